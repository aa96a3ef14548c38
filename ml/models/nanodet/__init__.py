"""NanoDet-g: detection of COCO's 80 kinds of objects."""

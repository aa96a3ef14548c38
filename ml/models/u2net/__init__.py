"""U²-Net and U²-NetP: the subject mask (salient object detection)."""

"""Models, weights, sessions and the image-processing pipeline. Imports no Flask."""

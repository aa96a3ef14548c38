"""MTCNN: face detection with five landmarks."""

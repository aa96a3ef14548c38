"""The 26-style transfer network: a photo painted in one style or a blend of two."""

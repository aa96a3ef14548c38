"""Photo edits that are no model's: composing a cutout, face effects, the ID photo layout."""

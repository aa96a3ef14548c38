"""Batches: many photos uploaded at once (files, or one ZIP checked as hostile), one operation for all, each photo
its own task; their progress together, one streamed ZIP of the results, retry and delete."""

"""The networks, each family in its own package: network.py, convert.py (from the official file), infer.py."""

"""Processing tasks: the service (rules) and the pages."""

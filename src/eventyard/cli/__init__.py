"""The `eventyard` command line."""

"""Control plane: the admin HTTP API, tokens, and configuration as code."""

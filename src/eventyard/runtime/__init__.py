"""Runtime: settings -> components, the ASGI app, startup and shutdown."""

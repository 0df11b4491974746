"""eventyard's shipped test kit: call an ASGI app in-process, run a real server, builders."""

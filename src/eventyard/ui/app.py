"""Routes of the web console: ``/ui/...`` serves ``static/``, and ``/`` sends browsers there.

Only a ``GET /`` (or ``HEAD``) whose ``Accept`` names ``text/html`` is redirected; any other
request to ``/`` gets the control app's usual 404 answer, so API clients see no change.
Every console response carries a Content-Security-Policy that allows nothing but this origin:
the console loads no code, style or font from anywhere else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.datastructures import Headers, MutableHeaders, URLPath
from starlette.responses import RedirectResponse
from starlette.routing import BaseRoute, Match, Mount, NoMatchFound
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC_DIR = Path(__file__).resolve().parent / "static"
PREFIX = "/ui"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    # the files change with the installed version; revalidate (ETag) rather than guess
    "cache-control": "no-cache",
}


class _SecurityHeaders:
    """Adds the console's security and caching headers to every response of ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


def wants_html(scope: Scope) -> bool:
    """A browser navigating (``GET``/``HEAD`` with ``Accept: text/html``) rather than an API client."""
    if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
        return False
    accept = Headers(scope=scope).get("accept", "")
    return "text/html" in accept.lower()


class BrowserRoot(BaseRoute):
    """``/`` for browsers only: a redirect to the console.

    A route that does not match other requests (rather than an endpoint that answers them),
    so API clients get exactly what they got before, and the OpenAPI document, which lists
    :class:`Route` objects, does not grow a path that is not part of the API.
    """

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and scope["path"] == "/" and wants_html(scope):
            return Match.FULL, {}
        return Match.NONE, {}

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await RedirectResponse(f"{PREFIX}/", status_code=303)(scope, receive, send)


def ui_routes() -> list[BaseRoute]:
    """The console's routes, to add to the control app."""
    files = StaticFiles(directory=STATIC_DIR, html=True)
    return [
        BrowserRoot(),
        Mount(PREFIX, app=_SecurityHeaders(files), name="ui"),
    ]

"""Call an ASGI app in-process, without a network: a request in, a response out."""

from __future__ import annotations

import gzip as gzip_module
from base64 import b64encode
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import msgspec

from eventyard.collect.app import ASGIApp, Message


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes = b""
    chunks: list[bytes] = field(default_factory=list)

    def json(self) -> Any:
        return msgspec.json.decode(self.body)


def basic(write_key: str, password: str = "") -> str:
    return "Basic " + b64encode(f"{write_key}:{password}".encode()).decode()


async def call(
    app: ASGIApp,
    method: str,
    url: str,
    body: bytes | str | dict[str, Any] | list[Any] | None = None,
    headers: dict[str, str] | None = None,
    *,
    gzip: bool = False,
    chunk_size: int | None = None,
    client: tuple[str, int] = ("203.0.113.7", 51000),
) -> Response:
    """Send one request through ``app`` and collect the whole response."""
    parts = urlsplit(url)
    if isinstance(body, (dict, list)):
        raw = msgspec.json.encode(body)
    elif isinstance(body, str):
        raw = body.encode()
    else:
        raw = body or b""
    hdrs = {k.lower(): v for k, v in (headers or {}).items()}
    if gzip:
        raw = gzip_module.compress(raw)
        hdrs.setdefault("content-encoding", "gzip")
    if raw and "content-length" not in hdrs:
        hdrs["content-length"] = str(len(raw))
    hdrs.setdefault("host", "testserver")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": parts.path,
        "raw_path": parts.path.encode(),
        "query_string": parts.query.encode(),
        "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in hdrs.items()],
        "client": client,
        "server": ("testserver", 80),
    }
    size = chunk_size or max(len(raw), 1)
    pieces = [raw[i : i + size] for i in range(0, len(raw), size)] or [b""]
    sent = 0

    async def receive() -> Message:
        nonlocal sent
        if sent < len(pieces):
            sent += 1
            return {"type": "http.request", "body": pieces[sent - 1], "more_body": sent < len(pieces)}
        return {"type": "http.disconnect"}

    response = Response(status=0, headers={})

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            response.status = message["status"]
            response.headers = {k.decode().lower(): v.decode() for k, v in message.get("headers", [])}
        elif message["type"] == "http.response.body":
            chunk = message.get("body", b"")
            response.chunks.append(chunk)
            response.body += chunk

    await app(scope, receive, send)
    return response

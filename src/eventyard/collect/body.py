"""Reading request bodies within a size limit, gzip included."""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]

GZIP_MAGIC = b"\x1f\x8b"


class BodyError(Exception):
    """The body cannot be read; ``reason`` is a code of ``collect.reasons.REQUEST``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


async def read_body(receive: Receive, limit: int, content_length: int | None) -> bytes:
    """Read the whole body, refusing more than ``limit`` bytes before reading them."""
    if content_length is not None and content_length > limit:
        raise BodyError("request_too_large", f"the body is {content_length} bytes; this source allows {limit}")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BodyError("invalid_body", "the client disconnected before sending the body")
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise BodyError("request_too_large", f"the body is over {limit} bytes, the limit of this source")
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """Undo gzip/deflate (by header or by gzip's magic bytes), refusing output over ``limit``."""
    encoding = encoding.strip().lower()
    if encoding in ("gzip", "x-gzip") or body[:2] == GZIP_MAGIC:
        wbits = 16 + zlib.MAX_WBITS
    elif encoding == "deflate":
        wbits = zlib.MAX_WBITS
    elif encoding in ("", "identity"):
        return body
    else:
        raise BodyError("invalid_encoding", f"unsupported Content-Encoding {encoding!r}")
    d = zlib.decompressobj(wbits)
    try:
        out = d.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BodyError("invalid_encoding", f"the body is not valid {encoding or 'gzip'}: {exc}") from None
    if len(out) > limit or d.unconsumed_tail:
        raise BodyError("request_too_large", f"the decompressed body is over {limit} bytes, the limit of this source")
    return out

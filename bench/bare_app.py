"""The baseline of the ingest benchmark: an ASGI app that only reads the body, parses the JSON and says 200.

It runs under the same server stack as ``eventyard serve`` (uvicorn, uvloop, httptools, one
worker, no access log), so the ratio eventyard / bare app is the cost of everything eventyard
does beyond HTTP and JSON parsing: authentication, normalization and the durable append.

    python bench/bare_app.py --port 8081
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import msgspec
import uvicorn

Message = MutableMapping[str, Any]

SUCCESS = b'{"success":true}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(SUCCESS)).encode())]
_decode = msgspec.json.decode


async def app(
    scope: Message, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
) -> None:
    if scope["type"] != "http":
        return
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    try:
        _decode(body)
    except msgspec.DecodeError:
        await send({"type": "http.response.start", "status": 400, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": SUCCESS})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
        workers=1,
    )


if __name__ == "__main__":
    main()

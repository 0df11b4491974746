"""A webhook recorder: a real HTTP server on 127.0.0.1 that records every request.

Each request is answered from a script of :class:`Answer` values, one per request in arrival
order, then with ``default`` (200). Answers can also be slow, hang until the server stops
(a client timeout), or reset the connection; ``eventyard.testing.faults`` has builders.

Async tests::

    async with WebhookRecorder() as recorder:
        ...  # send to f"{recorder.url}/hook"
        assert recorder.requests[0].json == {...}

Sync tests (for example against an ``eventyard serve`` subprocess) run it in a thread::

    with WebhookRecorder().in_thread() as recorder:
        ...
        recorder.wait_for(3)  # blocks until 3 requests arrived
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import msgspec
from aiohttp import web


@dataclass(frozen=True)
class Answer:
    """How the server answers one request."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    #: Seconds to wait before answering (cut short when the server stops).
    delay: float = 0.0
    #: Never answer: wait until the server stops (the client's timeout fires first).
    hang: bool = False
    #: Close the connection with a TCP reset instead of answering.
    reset: bool = False


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it.

    Header names are lower-case; a header sent several times has its values joined with
    ``", "`` (HTTP's rule for combining them), so a duplicate is visible.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    #: The body decoded as JSON, or ``None`` when it is empty or not JSON.
    json: Any

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def _headers(request: web.BaseRequest) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in request.headers.items():
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def _decode_json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None


class WebhookRecorder:
    """An aiohttp server on a free loopback port; an async context manager."""

    def __init__(self, *script: Answer, default: Answer | None = None) -> None:
        self.requests: list[RecordedRequest] = []
        self.default = default or Answer()
        self._script: deque[Answer] = deque(script)
        self._runner: web.ServerRunner | None = None
        self._port = 0
        self._stopping = asyncio.Event()
        self._arrived = asyncio.Condition()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, without a trailing slash; any path is accepted."""
        if not self._port:
            raise RuntimeError("the recorder is not started")
        return f"http://127.0.0.1:{self._port}"

    def script(self, *answers: Answer | Iterable[Answer]) -> None:
        """Queue answers for the next requests (after those already queued)."""
        for item in answers:
            if isinstance(item, Answer):
                self._script.append(item)
            else:
                self._script.extend(item)

    @property
    def pending(self) -> int:
        """Scripted answers not used yet."""
        return len(self._script)

    def clear(self) -> None:
        """Forget the recorded requests (the script stays)."""
        self.requests.clear()

    def json_bodies(self) -> list[Any]:
        return [r.json for r in self.requests]

    async def wait_for(self, count: int) -> list[RecordedRequest]:
        """Wait until at least ``count`` requests arrived (bound it with ``asyncio.timeout``)."""
        async with self._arrived:
            await self._arrived.wait_for(lambda: len(self.requests) >= count)
        return list(self.requests)

    async def start(self) -> None:
        if self._runner is not None:
            return
        self._stopping.clear()
        runner = web.ServerRunner(web.Server(self._handle), handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        await web.SockSite(runner, sock).start()
        self._runner = runner

    async def stop(self) -> None:
        """Release hanging answers and close the server; safe to call twice."""
        self._stopping.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> WebhookRecorder:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def in_thread(self) -> ThreadedRecorder:
        """A sync context manager running this recorder on its own event loop in a thread."""
        return ThreadedRecorder(self)

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        body = await request.read()
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=_headers(request),
            body=body,
            json=_decode_json(body),
        )
        answer = self._script.popleft() if self._script else self.default
        async with self._arrived:
            self.requests.append(record)
            self._arrived.notify_all()
        if answer.hang or answer.delay > 0:
            timeout = None if answer.hang else answer.delay
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout)
        if answer.reset:
            _reset(request)
        return web.Response(status=answer.status, body=answer.body, headers=answer.headers)


def _reset(request: web.BaseRequest) -> None:
    """Close the connection with RST (linger 0), as a crashing peer or a load balancer would."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class ThreadedRecorder:
    """Runs a :class:`WebhookRecorder` on an event loop in a background thread (sync tests)."""

    def __init__(self, recorder: WebhookRecorder) -> None:
        self.recorder = recorder
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="webhook-recorder", daemon=True)

    @property
    def url(self) -> str:
        return self.recorder.url

    @property
    def requests(self) -> list[RecordedRequest]:
        return self.recorder.requests

    def script(self, *answers: Answer | Iterable[Answer]) -> None:
        self.recorder.script(*answers)  # a deque: appending from another thread is safe

    def wait_for(self, count: int, timeout: float = 10.0) -> list[RecordedRequest]:
        """Block until at least ``count`` requests arrived."""
        return asyncio.run_coroutine_threadsafe(self._wait_for(count, timeout), self._loop).result(timeout + 5)

    async def _wait_for(self, count: int, seconds: float) -> list[RecordedRequest]:
        async with asyncio.timeout(seconds):
            return await self.recorder.wait_for(count)

    def __enter__(self) -> ThreadedRecorder:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.recorder.start(), self._loop).result(30)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.recorder.stop(), self._loop).result(30)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)
            self._loop.close()

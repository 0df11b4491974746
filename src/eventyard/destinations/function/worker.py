"""The worker process of a function destination: imports the user's module and runs its handlers.

Started by ``process.FunctionProcess`` (``python -c "...; from ...worker import main; main()"``).
It reads requests from stdin and answers on a private copy of its stdout (see ``protocol``);
before any user code runs, fd 1 is pointed at stderr and fd 0 at /dev/null, so a stray
``print`` or ``os.write(1, ...)`` cannot corrupt the protocol. Each call's printed and logged
output is captured (its tail goes back with the reply). Exceptions are classified by the error
classes of ``eventyard.functions``; whatever the user's code does, the worker answers or dies,
and the parent copes with both.
"""

from __future__ import annotations

import asyncio
import faulthandler
import importlib
import importlib.util
import inspect
import io
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from types import ModuleType
from typing import Any, BinaryIO

from eventyard import functions
from eventyard.destinations.function.protocol import (
    HANDLER_NAMES,
    OUTPUT_LIMIT,
    Call,
    Failure,
    Load,
    Reply,
    frame,
    read_frame,
    request_decoder,
)

#: The name a module loaded from a file path is imported under.
PATH_MODULE_NAME = "eventyard_function"


class TailBuffer(io.TextIOBase):
    """A text stream that keeps only the last ``limit`` characters written to it."""

    def __init__(self, limit: int = OUTPUT_LIMIT) -> None:
        super().__init__()
        self.limit = limit
        self._parts: list[str] = []
        self._size = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._parts.append(text)
        self._size += len(text)
        if self._size > 2 * self.limit:
            kept = "".join(self._parts)[-self.limit :]
            self._parts, self._size = [kept], len(kept)
        return len(text)

    def tail(self) -> str:
        return clean("".join(self._parts)[-self.limit :])


def clean(text: str) -> str:
    """``text`` with anything that is not valid UTF-8 (lone surrogates) escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


@contextmanager
def captured(buffer: TailBuffer) -> Iterator[None]:
    """Route ``print`` (stdout, stderr) and records reaching the root logger into ``buffer``."""
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with redirect_stdout(buffer), redirect_stderr(buffer):
            yield
    finally:
        root.removeHandler(handler)


def describe(exc: BaseException, module_file: str | None = None) -> Failure:
    """Classify an exception raised by user code (see ``eventyard.functions``)."""
    kind = type(exc).__name__
    message = clean(str(exc))
    if isinstance(exc, functions.RetryError):
        return Failure("retry", kind, message)
    if isinstance(exc, functions.DropEvent):
        return Failure("drop", kind, clean(str(getattr(exc, "reason", "") or message)))
    if isinstance(exc, functions.EventNotSupported):
        return Failure("unsupported", kind, message)
    if isinstance(exc, functions.InvalidEventPayload | functions.ValidationError):
        return Failure("invalid", kind, message)
    return Failure("error", kind, message, where=_where(exc, module_file))


def _where(exc: BaseException, module_file: str | None) -> str:
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if f.filename != __file__ and not f.filename.startswith("<frozen ")
    ]
    if not frames:
        return ""
    ours = [f for f in frames if module_file and f.filename == module_file]
    last = (ours or frames)[-1]
    return f"{Path(last.filename).name}:{last.lineno} in {last.name}"


def batch_results(value: Any, count: int, module_file: str | None) -> list[Failure | None] | None:
    """What ``on_batch`` returned, as per-event results (``None`` when it returned nothing)."""
    if value is None:
        return None
    if not isinstance(value, list | tuple) or len(value) != count:
        got = f"{len(value)} results" if isinstance(value, list | tuple) else type(value).__name__
        raise TypeError(f"on_batch must return None or a list of {count} results (one per event), got {got}")
    return [_batch_result(item, module_file) for item in value]


def _batch_result(item: Any, module_file: str | None) -> Failure | None:
    if item is None:
        return None
    if isinstance(item, BaseException):
        return describe(item, module_file)
    if isinstance(item, dict) and isinstance(item.get("status"), int):
        status = item["status"]
        if 200 <= status < 300:
            return None
        message = item.get("errormessage") or item.get("message") or ""
        return Failure("status", "status", str(message), status=status)
    raise TypeError(
        "an on_batch result must be None, an exception or a dict like {'status': 400, 'errormessage': '...'}, "
        f"got {item!r:.100}"
    )


class Runner:
    """The user's module and the state kept between calls."""

    def __init__(self) -> None:
        self.handlers: dict[str, Callable[..., Any]] = {}
        self.settings: dict[str, Any] = {}
        self.module_file: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def load(self, request: Load) -> Reply:
        if request.memory_limit_mb:
            _limit_memory(request.memory_limit_mb)
        buffer = TailBuffer()
        try:
            with captured(buffer):
                module = _import(request.module, request.is_path)
        except BaseException as exc:
            return Reply(error=describe(exc), output=buffer.tail())
        self.settings = request.settings
        self.module_file = getattr(module, "__file__", None)
        self.handlers = {n: getattr(module, n) for n in sorted(HANDLER_NAMES) if callable(getattr(module, n, None))}
        return Reply(handlers=list(self.handlers), output=buffer.tail())

    def call(self, request: Call) -> Reply:
        handler = self.handlers.get(request.handler)
        if handler is None:
            missing = f"the function defines no {request.handler}"
            return Reply(error=Failure("unsupported", "EventNotSupported", missing))
        buffer = TailBuffer()
        try:
            with captured(buffer):
                result = handler(request.arg, self.settings)
                if inspect.isawaitable(result):
                    result = self._event_loop().run_until_complete(result)
            results = None
            if request.handler == "on_batch":
                results = batch_results(result, len(request.arg), self.module_file)
        except BaseException as exc:
            restart = isinstance(exc, MemoryError)
            return Reply(error=describe(exc, self.module_file), output=buffer.tail(), restart=restart)
        return Reply(results=results, output=buffer.tail())

    def close(self) -> None:
        if self._loop is not None:
            self._loop.close()

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        # One loop for the worker's life, so async clients kept in module globals stay usable.
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
        return self._loop


def _import(module: str, is_path: bool) -> ModuleType:
    if not is_path:
        return importlib.import_module(module)
    path = Path(module)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {module}")
    # Helper modules beside the function's file are importable, as in a small project.
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(PATH_MODULE_NAME, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {module} as a Python module")
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[PATH_MODULE_NAME] = loaded
    spec.loader.exec_module(loaded)
    return loaded


def _limit_memory(megabytes: int) -> None:
    import resource

    limit = megabytes * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _claim_protocol_streams() -> tuple[BinaryIO, BinaryIO]:
    """Private copies of stdin/stdout for the protocol; fd 0 becomes /dev/null, fd 1 stderr."""
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    return requests, replies


def serve(requests: BinaryIO, replies: BinaryIO) -> None:
    """Answer requests until the parent closes our stdin."""
    runner = Runner()
    try:
        while (body := read_frame(requests)) is not None:
            request = request_decoder.decode(body)
            reply = runner.load(request) if isinstance(request, Load) else runner.call(request)
            try:
                data = frame(reply)
            except (TypeError, ValueError) as exc:
                data = frame(Reply(error=Failure("error", type(exc).__name__, f"the reply cannot be encoded: {exc}")))
            replies.write(data)
            replies.flush()
    finally:
        runner.close()


def main() -> None:
    faulthandler.enable()  # a segfault in user code leaves its traceback on stderr
    requests, replies = _claim_protocol_streams()
    serve(requests, replies)


if __name__ == "__main__":
    main()

"""Worker processes that prepare warehouse batches (flatten, plan, encode) outside the server's GIL.

Flattening events into Segment's tables and planning the columns is pure Python, about 20-35 µs
per event, and in one process it runs under one GIL: on two CPUs it was the critical path of a
warehouse load while the database waited. A ``PreparePool`` hands a batch's events to one of a
few ``python -m eventyard.warehouse.worker_main`` processes and gets the prepared result back:

* events go as msgpack (pickle when msgpack cannot carry a value, such as an integer past 64
  bits); the function to run is named ``"module:function"`` and its other arguments are pickled;
  the result comes back pickled (protocol 5; Arrow arrays pickle as their buffers). What the
  server's process pays is encoding the events and unpickling the result, ~1.5 µs per event.
* One request at a time per process; a caller waits for an idle one. Processes start on first
  use (the event loop's thread spawns them, see ``_Worker.start``) and stay for the pool's life.
* A process that dies or breaks the protocol (killed, out of memory, a crash in a C extension)
  raises ``PrepareFailed`` for the batch it was preparing, is collected, and the next request
  starts a new one. Nothing was written anywhere: the caller answers the batch with a retry, so
  it is neither lost nor loaded twice. An exception raised by the function itself comes back as
  ``PrepareError`` (the process lives on).
* ``close`` ends every process: end of its input, then SIGKILL after a grace period. Processes
  also get SIGKILL when the server's process dies (``PR_SET_PDEATHSIG``) and exit at the end of
  their input, so none outlives the server.

Batches smaller than ``MIN_EVENTS`` are not worth the trip (and keep small deployments and tests
free of extra processes): ``wanted`` says whether a batch should go to the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import struct
import subprocess
import sys
from typing import IO, Any

import msgspec

from eventyard.child_process import how_it_ended

log = logging.getLogger(__name__)

#: Batches with fewer events are prepared in the server's process.
MIN_EVENTS = 500
#: How long ``close`` waits for a process to exit by itself before killing it.
STOP_GRACE_SECONDS = 5.0

#: Request: events' format (``EVENTS_MSGPACK`` or ``EVENTS_PICKLE``), events' length, call's length.
REQUEST = struct.Struct("!BQQ")
#: Reply: ``REPLY_OK`` (a pickled result) or ``REPLY_ERROR`` (a pickled text), its length.
REPLY = struct.Struct("!BQ")
EVENTS_MSGPACK = 0
EVENTS_PICKLE = 1
REPLY_OK = 0
REPLY_ERROR = 1

_encoder = msgspec.msgpack.Encoder()
#: How msgpack's timestamp extension starts (fixext 4, fixext 8, ext 8 of 12 bytes).
_TIMESTAMP_HEADERS = (b"\xd6\xff", b"\xd7\xff", b"\xc7\x0c\xff")


class PrepareFailed(Exception):
    """The process preparing the batch died or broke the protocol (nothing was prepared)."""


class PrepareError(Exception):
    """The function raised in the worker process; the text is its traceback."""


def encode_events(events: Any) -> tuple[int, bytes]:
    """The events for a request: msgpack, or pickle for values msgpack cannot carry exactly."""
    try:
        data = _encoder.encode(events)
    except (TypeError, ValueError, OverflowError):
        data = b""
    # msgpack brings every date-time back in UTC, whatever its zone was: events that may hold
    # one (msgpack's timestamp extension, type -1; byte 0xff never occurs in UTF-8 text, so only
    # a number's bytes can look like it) go as pickle, which keeps them exactly.
    if data and not any(marker in data for marker in _TIMESTAMP_HEADERS):
        return EVENTS_MSGPACK, data
    return EVENTS_PICKLE, pickle.dumps(events, protocol=pickle.HIGHEST_PROTOCOL)


def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    data = stream.read(size)
    if data is None or len(data) != size:
        raise EOFError(f"end of the worker's output after {0 if data is None else len(data)} of {size} bytes")
    return data


class _Worker:
    """One worker process; ``exchange`` runs in a thread, one request at a time."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        # Spawned from the event loop's thread: PR_SET_PDEATHSIG fires when the thread that
        # started the child ends, and a thread of the default executor may end before the server.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "eventyard.warehouse.worker_main", str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )

    def exchange(self, function: str, events: Any, args: tuple[Any, ...]) -> Any:
        proc = self.proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        kind, payload = encode_events(events)
        call = pickle.dumps((function, args), protocol=pickle.HIGHEST_PROTOCOL)
        try:
            proc.stdin.write(REQUEST.pack(kind, len(payload), len(call)))
            proc.stdin.write(payload)
            proc.stdin.write(call)
            proc.stdin.flush()
            status, size = REPLY.unpack(_read_exactly(proc.stdout, REPLY.size))
            data = _read_exactly(proc.stdout, size)
        except (OSError, EOFError, ValueError, struct.error) as exc:
            raise PrepareFailed(self._death(exc)) from None
        if status == REPLY_ERROR:
            raise PrepareError(pickle.loads(data))
        if status != REPLY_OK:
            raise PrepareFailed(self._death(ValueError(f"unknown reply status {status}")))
        return pickle.loads(data)

    def _death(self, exc: BaseException) -> str:
        proc = self.proc
        code = None
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = proc.wait(1.0)
        return f"the process preparing the batch {how_it_ended(code, exc)}"

    def stop(self, grace: float) -> None:
        """End of its input, then SIGKILL if it has not exited within ``grace`` seconds; collected."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


class PreparePool:
    """Up to ``processes`` worker processes preparing batches; see the module's description."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._free: asyncio.Condition | None = None
        self._closed = False
        #: Processes started so far (a replaced process counts again).
        self.started = 0

    def wanted(self, size: int) -> bool:
        """Whether a batch of ``size`` events should be prepared here."""
        return self.processes > 0 and size >= MIN_EVENTS and not self._closed

    async def run(self, function: str, events: Any, *args: Any) -> Any:
        """``function(events, *args)`` in a worker process (``"module:function"``); its result.

        Raises ``PrepareFailed`` when the process died or broke the protocol (it is replaced on
        the next request) and ``PrepareError`` when the function raised.
        """
        worker = await self._take()
        healthy = False
        try:
            result = await asyncio.to_thread(worker.exchange, function, events, args)
            healthy = True
            return result
        except PrepareError:
            healthy = True
            raise
        finally:
            await self._give_back(worker, healthy)

    async def close(self) -> None:
        """Stop every process (waits for the ones busy with a batch, then kills what is left)."""
        self._closed = True
        free = self._condition()
        async with free:
            try:
                await asyncio.wait_for(free.wait_for(lambda: not self._busy), STOP_GRACE_SECONDS)
            except TimeoutError:
                log.warning(
                    "%d batch preparation(s) still running at close; their processes are killed", len(self._busy)
                )
        workers = [*self._idle, *self._busy]
        self._idle.clear()
        for worker in workers:  # ends its input: the busy ones fail their exchange
            await asyncio.to_thread(worker.stop, 0.0 if worker in self._busy else STOP_GRACE_SECONDS)
        self._busy.clear()

    def _condition(self) -> asyncio.Condition:
        if self._free is None:
            self._free = asyncio.Condition()
        return self._free

    async def _take(self) -> _Worker:
        free = self._condition()
        async with free:
            while True:
                if self._closed:
                    raise PrepareFailed("the warehouse destination is closing")
                if self._idle:
                    worker = self._idle.pop()
                    break
                if len(self._busy) < self.processes:
                    worker = _Worker()
                    break
                await free.wait()
            self._busy.add(worker)
        if not worker.alive:
            if worker.proc is not None:  # died while idle: collect it first
                await asyncio.to_thread(worker.stop, 0.0)
            try:
                worker.start()
            except OSError as exc:
                await self._give_back(worker, False)
                raise PrepareFailed(f"cannot start a process to prepare the batch: {exc}") from None
            self.started += 1
        return worker

    async def _give_back(self, worker: _Worker, healthy: bool) -> None:
        if not healthy:
            await asyncio.to_thread(worker.stop, 0.0)
        free = self._condition()
        async with free:
            self._busy.discard(worker)
            if healthy and not self._closed and worker.alive:
                self._idle.append(worker)
            elif self._closed:
                await asyncio.to_thread(worker.stop, 0.0)
            free.notify_all()

"""The parent's handle on one worker process: start it, ask it, kill it.

The worker runs in its own session (process group), so killing it also ends whatever the
user's code started. Whatever happens to it (a timeout, a crash, a protocol error, a
cancelled caller) this handle kills the process and reports it as ``WorkerTimeout`` or
``WorkerDied``; the next ``start`` brings a fresh one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

import msgspec

from eventyard.child_process import how_it_ended
from eventyard.destinations.function.protocol import (
    HEADER,
    OUTPUT_LIMIT,
    Call,
    Load,
    Reply,
    body_size,
    frame,
    reply_decoder,
)

#: The directory holding the ``eventyard`` package: appended to the worker's sys.path, so the
#: worker finds eventyard even when the server got it from a path of its own (tests, scripts).
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[3])
WORKER_BOOTSTRAP = (
    f"import sys; sys.path.append({_PACKAGE_ROOT!r}); from eventyard.destinations.function.worker import main; main()"
)
#: How long a worker may take to exit after its stdin was closed before it is killed.
STOP_GRACE_SECONDS = 2.0


class WorkerTimeout(Exception):
    """The worker did not answer in time; it has been killed."""


class WorkerDied(Exception):
    """The worker exited, or broke the protocol; it has been killed."""


class FunctionProcess:
    """One worker process speaking ``protocol`` over its stdin/stdout."""

    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None
        self._stderr_tail = bytearray()
        self._drain: asyncio.Task[None] | None = None
        #: Killed without waiting (a cancelled request): unusable even before it is collected.
        self._doomed = False

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None and not self._doomed

    async def start(self, load: Load, limit_seconds: float) -> Reply:
        """Spawn a worker and load the module; the reply says which handlers it has (or why not)."""
        await self.stop()
        self._stderr_tail.clear()
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WORKER_BOOTSTRAP,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        assert self._proc.stderr is not None
        self._drain = asyncio.create_task(self._keep_stderr_tail(self._proc.stderr))
        return await self.request(load, limit_seconds)

    async def request(self, message: Load | Call, limit_seconds: float) -> Reply:
        """Send one request and wait up to ``limit_seconds`` for its reply."""
        proc = self._proc
        if proc is None or not self.running:
            raise WorkerDied("the function's process is not running")
        try:
            return await asyncio.wait_for(self._exchange(proc, frame(message)), limit_seconds)
        except TimeoutError:
            await self.kill()
            raise WorkerTimeout(f"no answer within {limit_seconds:g}s") from None
        except (ConnectionError, asyncio.IncompleteReadError, msgspec.DecodeError, ValueError) as exc:
            # End of its output almost always means it exited: give it a moment to be collected.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 1.0)
            code = proc.returncode
            await self.kill()
            raise WorkerDied(self._death(code, exc)) from None
        except BaseException:
            # Cancelled mid-request: the stream is out of step, the worker must go.
            self._kill_now()
            raise

    async def stop(self) -> None:
        """Ask the worker to exit (end of its input), kill it if it does not."""
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None and proc.stdin is not None:
            with contextlib.suppress(ConnectionError):
                proc.stdin.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), STOP_GRACE_SECONDS)
        await self.kill()

    async def kill(self) -> None:
        """Kill the worker (and anything it started) and collect it."""
        proc = self._proc
        if proc is None:
            return
        self._kill_now()
        await proc.wait()
        if self._drain is not None:
            # A grandchild that left the process group may hold stderr open: do not wait for it.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._drain, 1.0)
        if proc.stdin is not None:
            proc.stdin.close()
        self._proc = self._drain = None
        self._doomed = False

    def _kill_now(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        self._doomed = True
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        except PermissionError:
            proc.kill()

    async def _exchange(self, proc: asyncio.subprocess.Process, data: bytes) -> Reply:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(data)
        await proc.stdin.drain()
        size = body_size(await proc.stdout.readexactly(HEADER.size))
        return reply_decoder.decode(await proc.stdout.readexactly(size))

    async def _keep_stderr_tail(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(65536):
            self._stderr_tail += chunk
            del self._stderr_tail[:-OUTPUT_LIMIT]

    def _death(self, code: int | None, exc: BaseException) -> str:
        what = how_it_ended(code, exc)
        tail = self._stderr_tail.decode("utf-8", "replace").strip()
        return f"the function's process {what}" + (f"; its last output:\n{tail}" if tail else "")

"""The function destination: the user's Python handlers, run in a worker process of their own.

One worker process per destination instance imports the module once and then serves call
after call (``process``, ``worker``). Calls are sequential: a call that runs past
``timeout_seconds`` gets its process killed and its event retried; a process that died is
started again for the next call. Whatever the user's code does, the route worker only ever
sees outcomes. The handler's exceptions map to outcomes as in Segment's destination
functions (see ``eventyard.functions``); a process that dies or hangs is a retry.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import msgspec

from eventyard.destinations.base import (
    Capabilities,
    DeleteSubject,
    DeliveryEvent,
    Destination,
    DestinationContext,
    Outcome,
    classify_status,
)
from eventyard.destinations.function.process import FunctionProcess, WorkerDied, WorkerTimeout
from eventyard.destinations.function.protocol import HANDLERS, Call, Failure, Load, Reply
from eventyard.destinations.function.settings import FunctionSettings
from eventyard.destinations.function.source import declared_handlers, is_path, resolve
from eventyard.errors import ConfigError, EventyardError, Unavailable
from eventyard.spec.timestamps import format_utc

log = logging.getLogger(__name__)

EVENT_NOT_SUPPORTED = "event_not_supported"
DROPPED_BY_FUNCTION = "dropped_by_function"
#: Time for a new process to start and import the module, on top of ``timeout_seconds``.
STARTUP_SECONDS = 10.0
#: Per-event mode: a ``deliver`` call should end within this even if every event times out.
PER_EVENT_BUDGET_SECONDS = 60.0


class FunctionDestination(Destination):
    """Runs a user's ``on_track``/``on_identify``/.../``on_batch``/``on_delete`` handlers."""

    name: ClassVar[str] = "function"
    Settings: ClassVar[type[msgspec.Struct]] = FunctionSettings
    capabilities: ClassVar[Capabilities] = Capabilities(batch_size=1, concurrency=1)

    settings: FunctionSettings

    def __init__(self, settings: Any, context: DestinationContext) -> None:
        super().__init__(settings, context)
        self._process = FunctionProcess()
        self._handlers: frozenset[str] = frozenset()
        self._lock = asyncio.Lock()

    @classmethod
    def capabilities_for(cls, settings: Any) -> Capabilities:
        """Deletes only when the module's source defines ``on_delete``; batches when it has ``on_batch``."""
        s: FunctionSettings = settings
        handlers = declared_handlers(s.module)
        deletes = handlers is not None and "on_delete" in handlers
        if s.batch and (handlers is None or "on_batch" in handlers):
            return Capabilities(batch_size=s.max_batch_size, batch_age_seconds=1.0, concurrency=1, deletes=deletes)
        per_call = max(1, min(100, int(PER_EVENT_BUDGET_SECONDS // s.timeout_seconds)))
        return Capabilities(batch_size=per_call, concurrency=1, deletes=deletes)

    async def start(self) -> None:
        """Start the worker process now, so the first delivery does not wait for it."""
        async with self._lock:
            try:
                await self._ensure_running()
            except EventyardError as exc:
                log.warning("function destination %s: %s", self.context.name, exc)

    async def close(self) -> None:
        async with self._lock:
            await self._process.stop()

    async def deliver(self, batch: Sequence[DeliveryEvent]) -> list[Outcome]:
        if not batch:
            return []
        async with self._lock:
            try:
                await self._ensure_running()
            except EventyardError as exc:
                return [Outcome.retry(str(exc))] * len(batch)
            if self.settings.batch and "on_batch" in self._handlers:
                return await self._deliver_batch(batch)
            return [await self._deliver_one(item) for item in batch]

    async def delete_user(self, subject: DeleteSubject) -> Outcome:
        """Call ``on_delete`` with ``{"type": "delete", "userId": ...}`` (plus ``identifiers`` when known)."""
        event: dict[str, Any] = {
            "type": "delete",
            "userId": subject.user_id,
            "messageId": f"delete-{uuid.uuid4()}",
            "timestamp": format_utc(datetime.fromtimestamp(self.context.clock(), UTC)),
        }
        if subject.identifiers:
            event["identifiers"] = dict(subject.identifiers)
        async with self._lock:
            try:
                await self._ensure_running()
            except EventyardError as exc:
                return Outcome.retry(str(exc))
            if "on_delete" not in self._handlers:
                return Outcome.failed(f"{self.settings.module} defines no on_delete handler: it cannot delete users")
            result = await self._invoke("on_delete", event)
        if isinstance(result, Outcome):
            return result
        outcome = outcome_of(result.error, result.output)
        if outcome.kind == "dropped":
            return Outcome.failed(f"on_delete did not delete the user ({outcome.error})")
        return outcome

    async def check(self) -> None:
        """Import the module in a fresh worker process and require at least one handler."""
        module = self.settings.module
        process = FunctionProcess()
        try:
            reply = await process.start(self._load_request(), self._startup_timeout())
        except WorkerTimeout:
            raise ConfigError(f"importing {module} took longer than {self._startup_timeout():g}s") from None
        except WorkerDied as exc:
            raise Unavailable(f"cannot run {module}: {exc}") from None
        finally:
            await process.stop()
        if reply.error is not None:
            raise ConfigError(f"cannot load {module}: {_with_output(reply.error.text(), reply.output)}")
        if not reply.handlers:
            names = ", ".join([*HANDLERS.values(), "on_batch", "on_delete"])
            raise ConfigError(f"{module} defines no handler; define at least one of {names}")

    async def _deliver_one(self, item: DeliveryEvent) -> Outcome:
        handler = HANDLERS.get(str(item.event.get("type")))
        if handler is None or handler not in self._handlers:
            return Outcome.dropped(EVENT_NOT_SUPPORTED)
        result = await self._invoke(handler, item.payload)
        if isinstance(result, Outcome):
            return result
        return outcome_of(result.error, result.output)

    async def _deliver_batch(self, batch: Sequence[DeliveryEvent]) -> list[Outcome]:
        result = await self._invoke("on_batch", [item.payload for item in batch])
        if isinstance(result, Outcome):
            return [result] * len(batch)
        if result.error is not None:
            return [outcome_of(result.error, result.output)] * len(batch)
        if result.results is None:
            return [Outcome.delivered()] * len(batch)
        return [outcome_of(failure, result.output) for failure in result.results]

    async def _invoke(self, handler: str, arg: Any) -> Reply | Outcome:
        """The worker's reply, or the outcome for the whole call when there is no reply."""
        timeout = self.settings.timeout_seconds
        try:
            await self._ensure_running()
            reply = await self._process.request(Call(handler, arg), timeout)
        except EventyardError as exc:
            return Outcome.retry(str(exc))
        except WorkerTimeout:
            return Outcome.retry(f"{handler} took longer than {timeout:g}s; its process was restarted")
        except WorkerDied as exc:
            return Outcome.retry(f"{handler} did not finish: {exc}")
        if reply.restart:
            await self._process.kill()
        return reply

    async def _ensure_running(self) -> None:
        """A worker with the module loaded; ``ConfigError``/``Unavailable`` when there cannot be one."""
        if self._process.running:
            return
        module = self.settings.module
        try:
            reply = await self._process.start(self._load_request(), self._startup_timeout())
        except WorkerTimeout:
            raise Unavailable(f"importing {module} took longer than {self._startup_timeout():g}s") from None
        except WorkerDied as exc:
            raise Unavailable(f"cannot start the function's process: {exc}") from None
        if reply.error is not None:
            await self._process.stop()
            raise ConfigError(f"cannot load {module}: {_with_output(reply.error.text(), reply.output)}")
        self._handlers = frozenset(reply.handlers)

    def _load_request(self) -> Load:
        s = self.settings
        return Load(resolve(s.module), is_path(s.module), s.settings, s.memory_limit_mb)

    def _startup_timeout(self) -> float:
        return STARTUP_SECONDS + self.settings.timeout_seconds


def outcome_of(failure: Failure | None, output: str) -> Outcome:
    """The outcome of one event from what its handler did (``None``: it returned normally)."""
    if failure is None:
        return Outcome.delivered()
    category = failure.category
    if category == "drop":
        return Outcome.dropped(failure.message or DROPPED_BY_FUNCTION)
    if category == "unsupported":
        return Outcome.dropped(EVENT_NOT_SUPPORTED)
    if category == "status":
        outcome = classify_status(failure.status or 500, failure.message)
        return msgspec.structs.replace(outcome, error=_with_output(outcome.error, output))
    text = _with_output(failure.text(), output)
    return Outcome.retry(text) if category == "retry" else Outcome.failed(text)


def _with_output(text: str, output: str) -> str:
    return f"{text}\n--- output ---\n{output}" if output.strip() else text

"""The Destination contract: what a destination does, and nothing about policy.

A destination turns a batch of events into deliveries and says, per event, what happened.
Batching, retries, backoff, rate limits, ordering, dead letters and metrics live in
``eventyard.route``, once, for every destination. A destination is a class registered under
the entry point group ``eventyard.destinations``; its heavy dependencies are imported inside
``start`` so that listing destinations stays cheap.

Destinations import only ``destinations.base``, ``spec``, ``warehouse`` and ``errors``.
"""

from __future__ import annotations

import contextvars
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import msgspec

_log = logging.getLogger("eventyard.destinations")

#: A settings field holding a secret: never shown in full by the API, logs or reprs.
Secret = Annotated[str, msgspec.Meta(extra={"secret": True})]

ALL_EVENT_TYPES = frozenset({"track", "identify", "page", "screen", "group", "alias"})

OutcomeKind = Literal["delivered", "retry", "failed", "dropped"]


class Capabilities(msgspec.Struct, frozen=True):
    """What a destination can take; ``route`` batches and schedules by these."""

    #: Most events per ``deliver`` call (1 = one request per event).
    batch_size: int = 1
    #: Most payload bytes per ``deliver`` call (JSON-encoded events).
    batch_bytes: int = 4 * 1024 * 1024
    #: How long an incomplete batch may wait for more events, in seconds.
    batch_age_seconds: float = 0.0
    #: Deliveries in flight at once for one configured destination.
    concurrency: int = 4
    #: Event types the destination accepts; others are filtered with reason ``unsupported_type``.
    event_types: frozenset[str] = ALL_EVENT_TYPES
    #: The destination can erase a user's data (``delete_user``).
    deletes: bool = False
    #: The destination sends payloads shaped by a mapping when one is configured.
    mappable: bool = True
    #: ``deliver`` only encodes each ``payload`` as JSON with msgspec and never reads ``event``:
    #: route may then pass the stored JSON as ``msgspec.Raw`` (msgspec writes it out as is) and
    #: ``event`` empty, which saves decoding and re-encoding every event.
    encoded_payloads: bool = False


class Outcome(msgspec.Struct, frozen=True):
    """What happened to one event. Build with the class methods."""

    kind: OutcomeKind
    error: str = ""
    #: Seconds the destination asked us to wait (Retry-After), for ``retry``.
    retry_after: float | None = None
    #: HTTP status (or similar code) behind the outcome, when there is one.
    status: int | None = None

    @classmethod
    def delivered(cls, status: int | None = None) -> Outcome:
        return cls("delivered", status=status)

    @classmethod
    def retry(cls, error: str, retry_after: float | None = None, status: int | None = None) -> Outcome:
        return cls("retry", error=error, retry_after=retry_after, status=status)

    @classmethod
    def failed(cls, error: str, status: int | None = None) -> Outcome:
        """Terminal: the same event will fail the same way; it goes to the dead letters."""
        return cls("failed", error=error, status=status)

    @classmethod
    def dropped(cls, reason: str) -> Outcome:
        """The destination chose not to deliver this event (not an error), with a reason code."""
        return cls("dropped", error=reason)


def classify_status(status: int, body: str = "", retry_after: float | None = None) -> Outcome:
    """The one classification of HTTP answers for every destination.

    2xx delivered; 408, 429 and 5xx retry (honouring Retry-After); other 4xx failed (terminal).
    """
    excerpt = body[:300]
    if 200 <= status < 300:
        return Outcome.delivered(status)
    if status in (408, 429) or status >= 500:
        return Outcome.retry(f"HTTP {status}: {excerpt}".rstrip(": "), retry_after, status)
    return Outcome.failed(f"HTTP {status}: {excerpt}".rstrip(": "), status)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class DeliveryEvent(msgspec.Struct, frozen=True):
    """One event handed to a destination."""

    #: The normalized event (after filters' property changes).
    event: dict[str, Any]
    #: What to send: the mapped payload when a mapping applies, else the event itself.
    payload: Any
    message_id: str
    #: 1 on the first try.
    attempt: int = 1
    #: The source the event came from ("" when the caller does not say).
    source_id: str = ""


class DeleteSubject(msgspec.Struct, frozen=True):
    """A user whose data must be erased (regulations)."""

    user_id: str
    identifiers: dict[str, str] = {}


class DiscardReport(msgspec.Struct, frozen=True):
    """One value a warehouse kept aside instead of loading it (it is in ``<schema>.discards``)."""

    #: The event that carried the value ("" when it cannot be told).
    message_id: str
    source_id: str
    schema: str
    table: str
    column: str
    #: Why: ``not_timestamp``, ``not_boolean``, ``reserved_column``, ... (see docs/warehouse.md).
    reason: str


class DestinationServices:
    """What the running server offers destinations beyond their settings.

    ``DestinationContext`` takes the services of the process it is created in (``runtime``
    sets them with ``use_services`` when it starts delivery); this default, used by tests and
    tools that build a destination on their own, only logs.
    """

    async def report_discards(self, context: DestinationContext, discards: Sequence[DiscardReport]) -> None:
        """Called after a load committed, with the values it kept aside."""
        counts: dict[tuple[str, str], int] = {}
        for d in discards:
            counts[(d.schema, d.table)] = counts.get((d.schema, d.table), 0) + 1
        for (schema, table), n in sorted(counts.items()):
            _log.warning(
                "destination %s: %d value(s) of %s.%s were not loaded; they are in %s.discards",
                context.name,
                n,
                schema,
                table,
                schema,
            )

    async def source_name(self, source_id: str) -> str | None:
        """The name of a source (``None`` when unknown)."""
        return None


_services: contextvars.ContextVar[DestinationServices | None] = contextvars.ContextVar(
    "eventyard_destination_services", default=None
)
_standalone = DestinationServices()


def current_services() -> DestinationServices:
    """The services of the running server (set with ``use_services``), else the standalone default."""
    return _services.get() or _standalone


def use_services(services: DestinationServices) -> contextvars.Token[DestinationServices | None]:
    """Make ``services`` those of every ``DestinationContext`` created from now on in this context
    (and in tasks started from it); ``reset_services(token)`` undoes it."""
    return _services.set(services)


def reset_services(token: contextvars.Token[DestinationServices | None]) -> None:
    _services.reset(token)


@dataclass
class DestinationContext:
    """What eventyard gives a destination instance."""

    destination_id: str
    name: str
    #: A directory the destination may use for its own files (state, staging).
    data_dir: Path
    #: Wall clock in unix seconds; tests substitute a fake clock.
    clock: Callable[[], float] = field(default=time.time)
    #: The server's services (metrics, alerts, configuration look-ups); see ``DestinationServices``.
    services: DestinationServices = field(default_factory=current_services)

    async def report_discards(self, discards: Sequence[DiscardReport]) -> None:
        """Tell eventyard about values a load kept aside: they are counted in the metric
        ``eventyard_warehouse_discards_total``, shown in the delivery overview and the event's
        trace, and logged as a warning. Never raises."""
        if not discards:
            return
        try:
            await self.services.report_discards(self, discards)
        except Exception:
            _log.exception("destination %s: reporting %d discarded value(s) failed", self.name, len(discards))

    async def source_name(self, source_id: str) -> str | None:
        """The name of the source ``source_id`` (``None`` when unknown or not available); raises
        when the look-up itself fails (the caller should retry rather than guess)."""
        if not source_id:
            return None
        return await self.services.source_name(source_id)


class Destination(ABC):
    """Base class of every destination plugin."""

    #: Registry name, e.g. ``"webhook"``.
    name: ClassVar[str]
    #: Settings type: a ``msgspec.Struct`` with ``forbid_unknown_fields=True``.
    Settings: ClassVar[type[msgspec.Struct]]
    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(self, settings: Any, context: DestinationContext) -> None:
        self.settings = settings
        self.context = context

    @classmethod
    def capabilities_for(cls, settings: Any) -> Capabilities:
        """Capabilities for these settings (e.g. a batching mode); by default ``capabilities``."""
        return cls.capabilities

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Open connections; import heavy dependencies here."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Flush and release resources."""

    @abstractmethod
    async def deliver(self, batch: Sequence[DeliveryEvent]) -> list[Outcome]:
        """Deliver ``batch``; return exactly one Outcome per event, in order. Never raise for
        a delivery failure: return ``Outcome.retry``/``failed`` (exceptions are treated as
        ``retry`` with the exception text)."""

    async def delete_user(self, subject: DeleteSubject) -> Outcome:
        """Erase a user's data at the destination, if ``capabilities.deletes``."""
        return Outcome.failed(f"destination {self.name!r} does not support deletion")

    async def check(self) -> None:  # noqa: B027 - optional hook
        """Verify the settings work (reachability, credentials) without side effects; raise
        ``eventyard.errors.ConfigError`` or ``Unavailable`` with a helpful message."""


def secret_fields(settings_type: type[msgspec.Struct]) -> set[str]:
    """Names of the fields declared as ``Secret``."""
    out: set[str] = set()
    info = msgspec.inspect.type_info(settings_type)
    if isinstance(info, msgspec.inspect.StructType):
        for f in info.fields:
            t = f.type
            if isinstance(t, msgspec.inspect.Metadata) and (t.extra or {}).get("secret"):
                out.add(f.name)
            elif isinstance(t, msgspec.inspect.UnionType):
                for member in t.types:
                    if isinstance(member, msgspec.inspect.Metadata) and (member.extra or {}).get("secret"):
                        out.add(f.name)
    return out


def redact(settings: msgspec.Struct) -> dict[str, Any]:
    """Settings as builtins, secrets replaced by ``"…"`` plus their last 4 characters."""
    data: dict[str, Any] = msgspec.to_builtins(settings)
    for name in secret_fields(type(settings)):
        value = data.get(name)
        if isinstance(value, str) and value:
            data[name] = "…" + value[-4:] if len(value) > 8 else "…"
    return data

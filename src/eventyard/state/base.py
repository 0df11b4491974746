"""The StateStore contract and the records it holds."""

from __future__ import annotations

from typing import Any, Protocol

import msgspec

from eventyard.spec.limits import Limits


class Workspace(msgspec.Struct, frozen=True):
    id: str
    name: str
    created_at: float


class Source(msgspec.Struct, frozen=True):
    id: str
    workspace_id: str
    name: str
    write_key: str
    enabled: bool = True
    limits: Limits = Limits()
    created_at: float = 0.0


class Token(msgspec.Struct, frozen=True):
    """An API token; only the SHA-256 of the secret is stored."""

    id: str
    name: str
    role: str
    token_hash: str
    workspace_id: str | None = None
    created_at: float = 0.0


class DeliveryPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How eventyard delivers to one destination (policy; the destination only delivers)."""

    #: A job is dead-lettered only after this many attempts ...
    max_attempts: int = 10
    #: ... AND this long since its first attempt.
    retry_window_hours: float = 4.0
    #: Deliver each user's events strictly in order (a failing user's later events wait).
    ordering: bool = False
    #: Deliveries in flight at once; default from the destination's capabilities.
    concurrency: int | None = None
    #: Deliveries per second at most; lowered automatically when the destination answers 429.
    rate_limit_per_second: float | None = None
    #: Events per delivery and how long to wait to fill a batch; capped by capabilities.
    batch_size: int | None = None
    batch_age_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("`max_attempts` must be at least 1")
        if self.retry_window_hours < 0:
            raise ValueError("`retry_window_hours` cannot be negative")
        for name in ("concurrency", "batch_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"`{name}` must be at least 1")
        if self.rate_limit_per_second is not None and self.rate_limit_per_second <= 0:
            raise ValueError("`rate_limit_per_second` must be positive")


class DestinationConfig(msgspec.Struct, frozen=True):
    """A configured destination: its type (registry name), settings, policy and mappings."""

    id: str
    workspace_id: str
    name: str
    type: str
    settings: dict[str, Any] = {}
    enabled: bool = True
    delivery: DeliveryPolicy = DeliveryPolicy()
    #: Actions-style mappings: ``[{name, trigger, mapping, enabled}]``, first match wins.
    actions: list[dict[str, Any]] = []
    created_at: float = 0.0


class Connection(msgspec.Struct, frozen=True):
    """Events of ``source_id`` flow to ``destination_id`` through ``filters``."""

    source_id: str
    destination_id: str
    filters: list[dict[str, Any]] = []


class DestinationHealth(msgspec.Struct, frozen=True):
    destination_id: str
    status: str  # "healthy" | "degraded"
    reason: str
    since: float


class Document(msgspec.Struct, frozen=True):
    """One version of a piece of workspace configuration kept with its history.

    ``kind`` names what it is (``tracking_plan``, ``consent``, ``pii_rules``, ``identity_rules``,
    ...); ``(workspace_id, kind, name)`` names one document; every change is a new ``version``
    (1, 2, ...). A deletion is a version with ``deleted=True`` and the last body.
    """

    workspace_id: str
    kind: str
    name: str
    version: int
    body: dict[str, Any]
    created_at: float
    actor: str = ""
    deleted: bool = False


class AuditEntry(msgspec.Struct, frozen=True):
    """One line of the append-only audit trail: who did what to what, when, from where."""

    id: int
    at: float
    #: ``None`` for changes outside any workspace (e.g. creating a workspace as admin).
    workspace_id: str | None
    #: Who: a token id and name (``tok_...:ci``), ``cli`` or ``system``.
    actor: str
    #: What: ``<thing>.<verb>``, e.g. ``source.create``, ``profile.read``, ``regulation.create``.
    action: str
    #: Which: the id or name of the object acted on (a profile's ``email:ana@example.com``).
    target: str
    #: From where: client address, or ``cli`` / ``system``.
    origin: str
    detail: dict[str, Any] = {}


class RegulationStoreStatus(msgspec.Struct, frozen=True):
    """How far one store (log, identity, a warehouse, a destination, ...) is with a regulation."""

    #: ``INITIALIZED``, ``RUNNING``, ``FINISHED``, ``FAILED`` or ``NOT_SUPPORTED``.
    status: str
    detail: str = ""
    #: What the store removed, e.g. ``{"rows": 12, "tables": 3}``.
    removed: dict[str, int] = {}
    updated_at: float = 0.0


class Regulation(msgspec.Struct, frozen=True):
    """A deletion or suppression request for a set of subjects (Segment's Public API shape)."""

    id: str
    workspace_id: str
    #: ``SUPPRESS_WITH_DELETE``, ``DELETE_ONLY``, ``SUPPRESS_ONLY``, ``UNSUPPRESS``, ...
    regulation_type: str
    #: ``USER_ID`` (and ``ANONYMOUS_ID``, ``EMAIL``, ... where supported).
    subject_type: str
    subject_ids: list[str]
    #: Overall: ``INITIALIZED``, ``RUNNING``, ``FINISHED``, ``PARTIAL_SUCCESS``, ``FAILED``, ...
    status: str
    created_at: float
    finished_at: float | None = None
    #: Per store status; the regulation is FINISHED only when every store is.
    stores: dict[str, RegulationStoreStatus] = {}
    #: Scope: empty for the whole workspace, else one source id.
    source_id: str = ""


class Suppression(msgspec.Struct, frozen=True):
    """A subject whose events are refused at ingest until an UNSUPPRESS regulation."""

    workspace_id: str
    subject_type: str
    subject_id: str
    regulation_id: str
    created_at: float


#: Violation counts are kept per bucket of this many seconds (``record_violations``).
VIOLATION_BUCKET_SECONDS = 300.0


class ViolationCount(msgspec.Struct, frozen=True):
    """How often one kind of tracking-plan violation was seen at about ``at`` (a Unix time).

    The tracking-plan stage adds these up per batch; the store keeps them per
    ``VIOLATION_BUCKET_SECONDS`` bucket of ``at``.
    """

    workspace_id: str
    source_id: str
    #: The tracking plan's name.
    plan: str
    #: ``track``, ``identify``, ``group``, ``page``, ``screen`` or ``alias``.
    event_type: str
    #: The track event's (or page's, screen's) name; ``""`` for the others.
    event_name: str
    #: Where: ``properties.total``, ``traits.email``, ``""`` for the event as a whole.
    field: str
    #: ``Required``, ``Type``, ``Value`` or ``Unplanned``.
    violation_type: str
    count: int
    at: float
    #: One example of what was wrong, for people.
    description: str = ""


class ViolationSummary(msgspec.Struct, frozen=True):
    """The counts of one kind of violation over the last hour, 24 hours and 7 days."""

    source_id: str
    plan: str
    event_type: str
    event_name: str
    field: str
    violation_type: str
    description: str
    last_seen: float
    count_1h: int
    count_24h: int
    count_7d: int


class PiiFinding(msgspec.Struct, frozen=True):
    """How often a field of one source's events held one kind of PII (the PII report)."""

    workspace_id: str
    source_id: str
    #: ``properties.email``, ``context.traits.phone``, ``properties.items.$.card``.
    path: str
    #: ``email``, ``phone``, ``card``, ``national_id``, ``ip`` or ``declared`` (a path rule).
    kind: str
    count: int
    first_seen: float
    last_seen: float


class StateStore(Protocol):
    """Configuration and long-lived state. Every change bumps ``config_version``."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def config_version(self) -> int: ...

    async def create_workspace(self, name: str) -> Workspace: ...

    async def list_workspaces(self) -> list[Workspace]: ...

    async def workspace_by_name(self, name: str) -> Workspace | None: ...

    async def create_source(
        self,
        workspace_id: str,
        name: str,
        *,
        write_key: str | None = None,
        enabled: bool = True,
        limits: Limits | None = None,
    ) -> Source: ...

    async def update_source(
        self,
        source_id: str,
        *,
        write_key: str | None = None,
        enabled: bool | None = None,
        limits: Limits | None = None,
    ) -> Source: ...

    async def list_sources(self, workspace_id: str | None = None) -> list[Source]: ...

    async def source_by_write_key(self, write_key: str) -> Source | None: ...

    async def add_token(self, name: str, role: str, token_hash: str, workspace_id: str | None = None) -> Token: ...

    async def token_by_hash(self, token_hash: str) -> Token | None: ...

    async def list_tokens(self) -> list[Token]: ...

    async def delete_token(self, token_id: str) -> bool:
        """Revoke a token; ``False`` when there is none with that id."""
        ...

    async def get_meta(self, key: str) -> str | None: ...

    async def set_meta(self, key: str, value: str) -> None: ...

    # destinations and connections

    async def create_destination(
        self,
        workspace_id: str,
        name: str,
        type: str,
        *,
        settings: dict[str, Any] | None = None,
        enabled: bool = True,
        delivery: DeliveryPolicy | None = None,
        actions: list[dict[str, Any]] | None = None,
    ) -> DestinationConfig: ...

    async def update_destination(
        self,
        destination_id: str,
        *,
        settings: dict[str, Any] | None = None,
        enabled: bool | None = None,
        delivery: DeliveryPolicy | None = None,
        actions: list[dict[str, Any]] | None = None,
    ) -> DestinationConfig: ...

    async def list_destinations(self, workspace_id: str | None = None) -> list[DestinationConfig]: ...

    async def set_connection(
        self, source_id: str, destination_id: str, filters: list[dict[str, Any]] | None = None
    ) -> Connection: ...

    async def delete_connection(self, source_id: str, destination_id: str) -> bool: ...

    async def list_connections(self) -> list[Connection]: ...

    # deduplication (not configuration: does not bump the version)

    async def mark_seen(
        self, source_id: str, entries: list[tuple[str, int]], now: float, window_seconds: float
    ) -> set[int]:
        """Record ``(message_id, record_id)`` pairs; return the record ids whose message id was
        already seen within the window on a different record (true duplicates, including a
        repeat inside ``entries``). Seeing the same record again (a retried batch) is not a
        duplicate."""
        ...

    async def purge_seen(self, older_than: float) -> int: ...

    # destination health (not configuration)

    async def set_destination_health(self, destination_id: str, status: str, reason: str, since: float) -> None: ...

    async def list_destination_health(self) -> list[DestinationHealth]: ...

    # versioned configuration documents (bump the version)

    async def put_document(
        self, workspace_id: str, kind: str, name: str, body: dict[str, Any], *, actor: str = ""
    ) -> Document:
        """Store ``body`` as the next version, unless it equals the latest (then return that)."""
        ...

    async def get_document(
        self, workspace_id: str, kind: str, name: str, version: int | None = None
    ) -> Document | None:
        """The latest (or the given) version; a deleted document's latest is ``None``."""
        ...

    async def list_documents(self, workspace_id: str | None, kind: str) -> list[Document]:
        """The latest version of every document of ``kind`` that is not deleted, by name."""
        ...

    async def document_history(self, workspace_id: str, kind: str, name: str) -> list[Document]:
        """Every version, oldest first (tombstones included)."""
        ...

    async def delete_document(self, workspace_id: str, kind: str, name: str, *, actor: str = "") -> bool: ...

    # audit trail (append-only; does not bump the version)

    async def append_audit(
        self,
        workspace_id: str | None,
        actor: str,
        action: str,
        target: str,
        origin: str,
        detail: dict[str, Any] | None = None,
        *,
        at: float | None = None,
    ) -> AuditEntry: ...

    async def list_audit(
        self,
        workspace_id: str | None = None,
        *,
        since: float | None = None,
        until: float | None = None,
        actor: str | None = None,
        action: str | None = None,
        after_id: int = 0,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Entries oldest first with ``id > after_id`` (a cursor); ``action`` matches a prefix."""
        ...

    # regulations and suppressions (suppressions bump the version: collect reloads them)

    async def create_regulation(
        self,
        workspace_id: str,
        regulation_type: str,
        subject_type: str,
        subject_ids: list[str],
        *,
        stores: list[str],
        source_id: str = "",
    ) -> Regulation: ...

    async def get_regulation(self, regulation_id: str) -> Regulation | None: ...

    async def list_regulations(
        self, workspace_id: str, *, status: str | None = None, source_id: str | None = None
    ) -> list[Regulation]:
        """Newest first."""
        ...

    async def set_regulation_store(
        self,
        regulation_id: str,
        store: str,
        status: str,
        *,
        detail: str = "",
        removed: dict[str, int] | None = None,
    ) -> Regulation:
        """Record one store's progress and recompute the overall status: RUNNING while any store
        is INITIALIZED/RUNNING; then FINISHED when all are FINISHED or NOT_SUPPORTED, FAILED when
        all failed, PARTIAL_SUCCESS otherwise."""
        ...

    async def delete_regulation(self, regulation_id: str) -> bool:
        """Only an INITIALIZED regulation can be deleted (Segment's rule)."""
        ...

    async def add_suppressions(
        self, workspace_id: str, subject_type: str, subject_ids: list[str], regulation_id: str
    ) -> int: ...

    async def remove_suppressions(self, workspace_id: str, subject_type: str, subject_ids: list[str]) -> int: ...

    async def list_suppressions(self, workspace_id: str | None = None) -> list[Suppression]: ...

    # tracking-plan violation counts (not configuration: do not bump the version)

    async def record_violations(self, counts: list[ViolationCount]) -> None:
        """Add each count to its bucket (``at`` rounded down to ``VIOLATION_BUCKET_SECONDS``),
        keyed by everything but ``count``, ``at`` and ``description``; the bucket keeps the
        latest ``at`` as last seen and the latest description."""
        ...

    async def violation_summary(
        self, workspace_id: str, now: float, *, plan: str | None = None, source_id: str | None = None
    ) -> list[ViolationSummary]:
        """One row per kind of violation seen in the 7 days before ``now`` (optionally of one plan
        or source): counts of the buckets that start within 1 h, 24 h and 7 d before ``now``;
        most recently seen first."""
        ...

    async def purge_violations(self, older_than: float) -> int:
        """Delete buckets that start before ``older_than``; returns how many."""
        ...

    # PII findings for the PII report (not configuration: do not bump the version)

    async def record_pii_findings(self, findings: list[PiiFinding]) -> None:
        """Add each finding's count to its (workspace, source, path, kind) row, widening first
        and last seen."""
        ...

    async def list_pii_findings(self, workspace_id: str | None, *, source_id: str | None = None) -> list[PiiFinding]:
        """Every row (of one workspace, optionally one source), by source, path and kind."""
        ...

    async def clear_pii_findings(self, workspace_id: str, *, source_id: str | None = None) -> int:
        """Forget the findings of a workspace (or one of its sources); returns how many rows."""
        ...


#: Store states that still have work to do.
_OPEN_STATES = frozenset({"INITIALIZED", "RUNNING"})


def overall_regulation_status(stores: dict[str, RegulationStoreStatus]) -> str:
    """The regulation's status from its stores' (the same rule on every backend)."""
    states = [s.status for s in stores.values()]
    if not states:
        return "FINISHED"
    if any(s in _OPEN_STATES for s in states):
        return "RUNNING" if any(s not in {"INITIALIZED"} for s in states) else "INITIALIZED"
    if all(s in {"FINISHED", "NOT_SUPPORTED"} for s in states):
        return "FINISHED"
    if all(s == "FAILED" for s in states):
        return "FAILED"
    return "PARTIAL_SUCCESS"

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

"""The routing table: for each source, its connected destinations with compiled filters and mappings.

Built from the state store and rebuilt when the configuration version changes (checked for
every batch), so the pipeline never compiles FQL or mappings per event.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from eventyard.destinations import registry
from eventyard.destinations.base import Capabilities
from eventyard.errors import ConfigError
from eventyard.log import topics
from eventyard.privacy.consent import DestinationConsent
from eventyard.route import consent
from eventyard.route.filters import CompiledFilter, apply_filters, compile_filters
from eventyard.route.mapping import compile_action_set
from eventyard.state.base import DestinationConfig, StateStore

log = logging.getLogger(__name__)


class FilterChain(Protocol):
    def apply(self, event: dict[str, Any]) -> tuple[dict[str, Any] | None, str, str]:
        """The (possibly changed) event, or ``None`` with a reason code and detail."""
        ...


class ActionSet(Protocol):
    def select(self, event: dict[str, Any]) -> tuple[str, Any] | None:
        """(action name, payload) of the first matching action, or ``None``."""
        ...


@dataclass
class Route:
    config: DestinationConfig
    capabilities: Capabilities
    #: Names the integrations object may use for this destination (its name, then its type).
    integration_names: tuple[str, ...]
    filters: FilterChain | None = None
    actions: ActionSet | None = None
    #: Why this route cannot be used as configured (the destination does not load, or its
    #: filters or mappings no longer compile): events are held back with ``config_error``.
    broken: str | None = None
    #: The consent categories the destination needs (``route.consent``); ``None``: none.
    consent: DestinationConsent | None = None
    #: The destination's delivery queue.
    topic: str = field(init=False)

    def __post_init__(self) -> None:
        self.topic = topics.deliver(self.config.id)


@dataclass
class Routes:
    version: int
    by_source: dict[str, list[Route]] = field(default_factory=dict)
    destinations: dict[str, DestinationConfig] = field(default_factory=dict)


def capabilities_of(config: DestinationConfig) -> Capabilities:
    cls = registry.load(config.type)
    return cls.capabilities_for(msgspec.convert(config.settings, cls.Settings))


class _Filters:
    """A connection's compiled destination filters, applied in Segment's order."""

    def __init__(self, compiled: list[CompiledFilter]) -> None:
        self.compiled = compiled

    def apply(self, event: dict[str, Any]) -> tuple[dict[str, Any] | None, str, str]:
        result = apply_filters(self.compiled, event)
        return result.event, result.reason, result.detail


def build_filters(specs: list[dict[str, Any]]) -> FilterChain | None:
    """Compile a connection's filters (raises ``ConfigError`` with the problem)."""
    return _Filters(compile_filters(specs)) if specs else None


def build_actions(specs: list[dict[str, Any]]) -> ActionSet | None:
    """Compile a destination's mappings (raises ``ConfigError`` with the problem)."""
    return compile_action_set(specs) if specs else None


class RoutingTable:
    def __init__(self, state: StateStore) -> None:
        self.state = state
        self._routes: Routes | None = None

    async def current(self) -> Routes:
        # The version is read for every batch (one indexed row): an event stored after a
        # configuration change is routed by the new configuration, never by a stale copy.
        version = await self.state.config_version()
        if self._routes is None or self._routes.version != version:
            self._routes = await self.build(version)
        return self._routes

    async def build(self, version: int) -> Routes:
        destinations = {d.id: d for d in await self.state.list_destinations()}
        routes = Routes(version, destinations=destinations)
        compiled: dict[str, Route] = {}
        for dest in destinations.values():
            route = Route(dest, Capabilities(), (dest.name, dest.type))
            try:
                route.capabilities = capabilities_of(dest)
                route.actions = build_actions(dest.actions)
            except Exception as exc:
                log.error("destination %s cannot be used as configured: %s", dest.name, exc)
                route.broken = f"destination {dest.name!r} cannot be used as configured: {exc}"
            compiled[dest.id] = route
        for conn in await self.state.list_connections():
            base = compiled.get(conn.destination_id)
            if base is None:
                continue
            route = Route(base.config, base.capabilities, base.integration_names, None, base.actions, base.broken)
            try:
                route.filters = build_filters(conn.filters)
            except ConfigError as exc:
                route.broken = route.broken or f"filters of this connection do not compile: {exc}"
            routes.by_source.setdefault(conn.source_id, []).append(route)
        await consent.attach(self.state, routes)
        return routes

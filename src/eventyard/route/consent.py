"""Consent in the routing table: each route learns the consent categories its destination needs.

Called by ``RoutingTable.build`` (so it is rebuilt with every configuration change); the
decision itself is ``privacy.consent.blocked_by``, made in ``fanout.decide`` before the
``integrations`` object is looked at (Segment's order). Destinations in no category have no
consent needs and are never held back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eventyard.privacy.config import load_consent
from eventyard.privacy.consent import compile_for

if TYPE_CHECKING:
    from eventyard.route.routing import Routes
    from eventyard.state.base import StateStore

REASON = "consent"


async def attach(state: StateStore, routes: Routes) -> None:
    workspaces = {d.workspace_id for d in routes.destinations.values()}
    configs = {ws: await load_consent(state, ws) for ws in workspaces}
    for route_list in routes.by_source.values():
        for route in route_list:
            config = configs.get(route.config.workspace_id)
            route.consent = compile_for(config, route.config.name) if config is not None else None

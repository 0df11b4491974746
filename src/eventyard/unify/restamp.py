"""Stamp events read back from the log (replay) with the profile they belong to **now**.

The ingest log keeps events as they were sent, without the identity stage's stamp, so a
replayed event would reach its destination with no ``context.eventyard.profileId`` at all;
and the profile of its first pass may since have been merged into another. ``restamp`` looks
the event's identifiers up in the graph as it is now (one read for a whole page of events)
and stamps the profile that holds its highest-priority identifier: the profile the identity
stage would find for it today. It writes nothing to the graph: a replay is a second delivery,
not new evidence. An event none of whose identifiers is in the graph (all of them blocked,
say) stays unstamped, as it was on its first pass.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from eventyard.spec.pipeline import PipelineEvent
from eventyard.state.identity_base import GraphTx
from eventyard.unify import stamp
from eventyard.unify.identifiers import Extracted, extract
from eventyard.unify.identity_rules import ACCOUNTS, USERS
from eventyard.unify.identity_service import IdentityService


def _first(keys: list[str], found: dict[str, str]) -> str | None:
    for k in keys:
        profile = found.get(k)
        if profile is not None:
            return profile
    return None


async def restamp(service: IdentityService, events: list[PipelineEvent]) -> int:
    """Stamp ``events`` (in place) with their current profiles; returns how many were stamped."""
    by_workspace: dict[str, list[PipelineEvent]] = {}
    for item in events:
        workspace = await service.workspace_of(item.source_id)
        if workspace is not None:
            by_workspace.setdefault(workspace, []).append(item)
    stamped = 0
    for workspace, items in by_workspace.items():
        rules = await service.rules(workspace)
        extracted: list[Extracted] = [extract(item.event, rules) for item in items]
        users = sorted({k for e in extracted for k in e.users})
        accounts = sorted({k for e in extracted for k in e.accounts})

        def q(
            tx: GraphTx, workspace: str = workspace, users: list[str] = users, accounts: list[str] = accounts
        ) -> tuple[dict[str, str], dict[str, str]]:
            return tx.lookup(workspace, USERS, users), tx.lookup(workspace, ACCOUNTS, accounts)

        found_users, found_accounts = await service.store.read(q)
        for item, found in zip(items, extracted, strict=True):
            user = _first(found.users, found_users)
            account = _first(found.accounts, found_accounts)
            if user is not None or account is not None:
                stamp.stamp(item.event, user, account)
                stamped += 1
    return stamped


def for_replay(service: IdentityService | None) -> Callable[[list[PipelineEvent]], Awaitable[int]] | None:
    """What ``route.replay.replay`` takes as ``restamp`` (``None`` without identity resolution)."""
    if service is None:
        return None
    found = service

    async def run(events: list[PipelineEvent]) -> int:
        return await restamp(found, events)

    return run

"""Profile contents: traits (last write wins by event time), metadata and event history.

A trait is stored as ``[value, event ts, source id, message id]``, so a late event never
overwrites a newer value and ``verbose`` answers can say where each value came from.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import dataclass, field
from typing import Any

from eventyard.state.identity_base import EventRow, GraphTx, LinkRow, ProfileRow, Touch


def event_traits(event: dict[str, Any]) -> dict[str, Any] | None:
    """The user traits an event sets: ``context.traits`` of any call, then an identify's own
    ``traits`` (which win). Group traits belong to the account, not the user."""
    context = event.get("context")
    ctx_traits = context.get("traits") if isinstance(context, dict) else None
    own = event.get("traits") if event.get("type") == "identify" else None
    if isinstance(ctx_traits, dict) and ctx_traits:
        if isinstance(own, dict) and own:
            return {**ctx_traits, **own}
        return ctx_traits
    if isinstance(own, dict) and own:
        return own
    return None


def set_trait(traits: dict[str, list[Any]], name: str, value: Any, ts: float, source_id: str, message_id: str) -> bool:
    """Apply one trait value if it is at least as new as the stored one; True when it changed."""
    current = traits.get(name)
    if current is not None and current[1] > ts:
        return False
    new = [value, ts, source_id, message_id]
    if current == new:
        return False
    traits[name] = new
    return True


def merge_traits(into: dict[str, list[Any]], other: dict[str, list[Any]]) -> None:
    """Every trait takes the newer of the two values (``into`` wins a tie)."""
    for name, entry in other.items():
        current = into.get(name)
        if current is None or entry[1] > current[1]:
            into[name] = entry


def see(profile: ProfileRow, ts: float, message_id: str, source_id: str) -> None:
    """Widen first/last seen with one event."""
    if profile.first_seen is None or ts < profile.first_seen:
        profile.first_seen, profile.first_message_id, profile.first_source_id = ts, message_id, source_id
    if profile.last_seen is None or ts >= profile.last_seen:
        profile.last_seen, profile.last_message_id, profile.last_source_id = ts, message_id, source_id


def absorb(into: ProfileRow, other: ProfileRow) -> None:
    """What a merge does to the surviving profile's traits and first/last seen."""
    merge_traits(into.traits, other.traits)
    if other.first_seen is not None:
        see(into, other.first_seen, other.first_message_id or "", other.first_source_id or "")
    if other.last_seen is not None:
        see(into, other.last_seen, other.last_message_id or "", other.last_source_id or "")


@dataclass
class ProfileUpdate:
    """What one resolved event contributes to its profile(s)."""

    profile_id: str
    ts: float
    message_id: str
    source_id: str
    #: Traits to apply (identify traits and context.traits), or none.
    traits: dict[str, Any] | None = None
    #: The event for the history (``None`` keeps no history).
    event: EventRow | None = None
    #: Account profile of a group call and the group's traits.
    account_id: str | None = None
    account_traits: dict[str, Any] | None = None


@dataclass
class RecordResult:
    #: Profiles whose traits changed.
    traits_changed: int = 0
    events_stored: int = 0
    links: int = 0
    #: Stamped profile id -> the profile it is now (when a merge happened since).
    redirected: dict[str, str] = field(default_factory=dict)
    #: (profile, source) pairs written (for the caller's cache of known pairs).
    sources: list[tuple[str, str]] = field(default_factory=list)


def _touch(touches: dict[str, Touch], pid: str, u: ProfileUpdate, now: float) -> None:
    t = touches.get(pid)
    if t is None:
        touches[pid] = Touch(pid, u.ts, u.message_id, u.source_id, u.ts, u.message_id, u.source_id, now)
        return
    if u.ts < t.first_seen:
        t.first_seen, t.first_message_id, t.first_source_id = u.ts, u.message_id, u.source_id
    if u.ts >= t.last_seen:
        t.last_seen, t.last_message_id, t.last_source_id = u.ts, u.message_id, u.source_id


def record(
    tx: GraphTx,
    workspace_id: str,
    updates: Sequence[ProfileUpdate],
    now: float,
    known_sources: Container[tuple[str, str]] = (),
) -> RecordResult:
    """Apply a batch of updates: history, metadata, sources, traits and links.

    Metadata and sources are written without reading the profiles first (conditional updates,
    inserts that ignore known pairs); only profiles whose traits change are read.
    ``known_sources``: (profile, source) pairs known to be stored already (a cache), skipped.
    """
    result = RecordResult()
    if not updates:
        return result
    stamped = [u.profile_id for u in updates] + [u.account_id for u in updates if u.account_id]
    moved = tx.merged_of(list(dict.fromkeys(stamped)))
    result.redirected = moved
    touches: dict[str, Touch] = {}
    sources: dict[tuple[str, str], float] = {}
    traits: dict[str, list[tuple[dict[str, Any], ProfileUpdate]]] = {}
    events: list[EventRow] = []
    account_events: list[tuple[str, str, str, str, float, float]] = []
    links: dict[tuple[str, str], LinkRow] = {}

    def apply(pid: str, new_traits: dict[str, Any] | None, u: ProfileUpdate) -> None:
        _touch(touches, pid, u, now)
        key = (pid, u.source_id)
        if key not in sources or u.ts < sources[key]:
            sources[key] = u.ts
        if new_traits:
            traits.setdefault(pid, []).append((new_traits, u))

    for u in updates:
        pid = moved.get(u.profile_id, u.profile_id)
        apply(pid, u.traits, u)
        if u.event is not None:
            u.event.profile_id = pid
            events.append(u.event)
        if u.account_id:
            account = moved.get(u.account_id, u.account_id)
            apply(account, u.account_traits, u)
            if u.event is not None:
                e = u.event
                account_events.append((workspace_id, account, e.source_id, e.message_id, e.ts, e.received))
            link = links.get((pid, account))
            if link is None:
                links[(pid, account)] = LinkRow(workspace_id, pid, account, u.ts, u.ts, u.message_id, u.source_id)
            else:
                link.first_at, link.last_at = min(link.first_at, u.ts), max(link.last_at, u.ts)
    tx.touch_profiles(list(touches.values()))
    fresh = [(pid, source, at) for (pid, source), at in sources.items() if (pid, source) not in known_sources]
    tx.add_sources(fresh)
    result.sources = [(pid, source) for pid, source, _ in fresh]
    if traits:
        current = tx.load_traits(sorted(traits))
        changed: list[tuple[str, dict[str, list[Any]], float]] = []
        for pid, applied in traits.items():
            stored = current.get(pid, {})
            dirty = False
            for values, u in applied:
                for name, value in values.items():
                    dirty |= set_trait(stored, name, value, u.ts, u.source_id, u.message_id)
            if dirty:
                changed.append((pid, stored, now))
        if changed:
            tx.save_traits(changed)
        result.traits_changed = len(changed)
    if events:
        tx.insert_events(events)
    if account_events:
        tx.insert_account_events(account_events)
    if links:
        tx.upsert_links(list(links.values()))
    result.events_stored = len(events)
    result.links = len(links)
    return result

"""Per-destination PII actions: what a destination with an override gets instead.

The unify PII stage (``unify.pii``) applied the workspace-level actions to the event and kept,
for every field some destination treats differently, the value as received
(``privacy.pii_scan.PlanEntry``). Here, for one destination, each such field gets that
destination's action applied to the received value, on a copy: the shared event and the other
destinations' jobs are not touched. ``block`` for the destination holds the event back from it
(reason ``pii_blocked``).
"""

from __future__ import annotations

from typing import Any

from eventyard.privacy import config
from eventyard.privacy.pii_scan import PlanEntry, process, transformed
from eventyard.spec.pipeline import PipelineEvent
from eventyard.state.base import StateStore

REASON = "pii_blocked"
_DROP = object()


def for_destination(
    event: dict[str, Any], plan: list[PlanEntry], destination_id: str
) -> tuple[dict[str, Any] | None, str]:
    """The event as this destination may get it, or ``None`` and why it may not."""
    out = event
    for entry in plan:
        action = entry.overrides.get(destination_id)
        if action is None or action == entry.action:
            continue
        if action == "block":
            what = entry.kind or "a value"
            return None, f"{entry.path} holds {what}; rule {entry.rule!r} blocks it for this destination"
        if action == "drop":
            out = _replaced(out, entry.keys, _DROP)
        elif action == "allow":
            out = _replaced(out, entry.keys, entry.raw)
        else:
            out = _replaced(out, entry.keys, transformed(action, entry.kind, entry.raw))
    return out, ""


def _replaced(event: dict[str, Any], keys: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    """A copy of ``event`` with the value at ``keys`` set (or removed), copying only the
    containers on the way; a missing container on the way is created."""
    root: dict[str, Any] = dict(event)
    node: Any = root
    for key in keys[:-1]:
        child = node[key] if _has(node, key) else {}
        child = dict(child) if isinstance(child, dict) else list(child) if isinstance(child, list) else {}
        node[key] = child
        node = child
    last = keys[-1]
    if value is _DROP:
        if isinstance(node, dict):
            node.pop(last, None)
        elif isinstance(node, list) and isinstance(last, int) and last < len(node):
            node[last] = None
    elif isinstance(node, list):
        if isinstance(last, int) and last < len(node):
            node[last] = value
    else:
        node[last] = value
    return root


def _has(node: Any, key: str | int) -> bool:
    if isinstance(node, dict):
        return key in node
    return isinstance(node, list) and isinstance(key, int) and key < len(node)


async def govern_replayed(state: StateStore | None, batch: list[PipelineEvent]) -> list[PipelineEvent]:
    """Events replayed from the log are read back as they were sent, without the unify stages:
    apply the workspace's PII rules to them as the ``pii`` stage does (events a rule blocks are
    left out; findings are not counted again)."""
    if state is None:
        return batch
    snap = await config.snapshot(state)
    if not snap.pii:
        return batch
    out = []
    for item in batch:
        rules = snap.pii.get(snap.workspace_of.get(item.source_id, ""))
        if rules is None:
            out.append(item)
            continue
        scan = process(item.event, rules)
        if scan.blocked is None:
            if scan.plan:
                item.pii = scan.plan
            out.append(item)
    return out

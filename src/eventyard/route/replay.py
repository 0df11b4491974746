"""Replay: deliver a time range of stored events again, to one chosen destination.

Events are read back from the ingest log (which keeps processed events for the retention
period), passed through that destination's filters and mappings exactly as live traffic is,
and queued as jobs marked ``replay``. Deduplication does not apply: a replay is a deliberate
second delivery (for example to a newly added destination). The log keeps events as they
were sent, so the runtime passes ``restamp``, which stamps each event with the profile it
belongs to now (after every later merge), not the one of its first pass.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from eventyard.errors import NotFound
from eventyard.log import topics
from eventyard.log.base import EventLog
from eventyard.route import pii_transform
from eventyard.route.fanout import Fanout
from eventyard.spec import stored
from eventyard.spec.pipeline import PipelineEvent

PAGE = 1000

#: Stamps events read back from the log with the profile they belong to now (in place);
#: injected by the runtime (route does not import unify). See ``eventyard.unify.restamp``.
Restamp = Callable[[list[PipelineEvent]], Awaitable[object]]


@dataclass
class ReplayResult:
    read: int = 0
    queued: int = 0
    filtered: int = 0


async def replay(
    log: EventLog,
    fanout: Fanout,
    destination_id: str,
    start: float,
    end: float,
    source_ids: set[str] | None = None,
    restamp: Restamp | None = None,
) -> ReplayResult:
    """Queue every stored event received in ``[start, end)`` for ``destination_id`` again.

    With ``restamp``, each page of events is stamped with the profiles they belong to now
    (``context.eventyard.profileId``) before filters and mappings see them."""
    routes = await fanout.table.current()
    if destination_id not in routes.destinations:
        raise NotFound(f"no destination {destination_id}")
    by_source = {source: [r for r in rs if r.config.id == destination_id] for source, rs in routes.by_source.items()}
    by_source = {s: rs for s, rs in by_source.items() if rs and (source_ids is None or s in source_ids)}
    result = ReplayResult()
    cursor = await log.first_id_at(topics.INGEST, start)
    while True:
        records = await log.read(topics.INGEST, cursor, PAGE)
        if not records:
            break
        cursor = records[-1].id
        batch: list[PipelineEvent] = []
        done = False
        for r in records:
            if r.appended_at >= end:
                done = True
                break
            if r.key not in by_source:
                continue
            batch.extend(stored.pipeline_events(r.id, r.key, r.payload, r.appended_at))
        result.read += len(batch)
        if batch and restamp is not None:
            await restamp(batch)
        read = len(batch)
        if batch:  # the log keeps events as sent: the workspace's PII rules apply to replays too
            batch = await pii_transform.govern_replayed(getattr(fanout.table, "state", None), batch)
        if batch:
            tx = fanout.plan(batch, by_source, origin="replayed")
            result.queued += len(tx.appends)
            result.filtered += read - len(tx.appends)
            await log.commit(tx)
        else:
            result.filtered += read
        if done:
            break
    return result

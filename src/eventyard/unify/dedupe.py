"""Stage: drop events whose ``messageId`` was already seen from the same source.

The window is per source and defaults to 24 hours (Segment keeps at least 24 hours of
messageIds). Seen ids live in the state store, so the window survives restarts and memory
stays flat; entries older than the window are purged by housekeeping. A batch that is
processed again after a crash is not mistaken for duplicates: an id counts as a duplicate
only when it was seen at a different position of the log (``PipelineEvent.position``).
"""

from __future__ import annotations

from eventyard.spec.pipeline import Dropped, PipelineEvent, StageResult
from eventyard.unify.context import StageContext

REASON = "duplicate_message_id"


async def run(batch: list[PipelineEvent], ctx: StageContext) -> StageResult:
    by_source: dict[str, list[PipelineEvent]] = {}
    for item in batch:
        by_source.setdefault(item.source_id, []).append(item)
    now = ctx.clock()
    duplicates: set[int] = set()
    for source_id, items in by_source.items():
        duplicates |= await ctx.state.mark_seen(
            source_id, [(i.message_id, i.position) for i in items], now, ctx.dedupe_window_seconds
        )
    if not duplicates:
        return StageResult(batch)
    kept = [i for i in batch if i.position not in duplicates]
    dropped = [
        Dropped(i, REASON, f"messageId {i.message_id!r} was already received from this source")
        for i in batch
        if i.position in duplicates
    ]
    return StageResult(kept, dropped)

"""Stage: drop events of suppressed users that were stored before their suppression.

Collect refuses a suppressed user's events at the door (``collect.ingest``); events it had
already stored when the suppression landed are still in the ingest log, and this stage drops
them (reason ``suppressed``) before any other stage or destination sees them. It reads the
in-memory suppression list (``privacy.suppression``), so a batch of a workspace without
suppressions costs one dictionary look-up per event. Without a list (``ctx.suppressions`` is
``None``) events pass.
"""

from __future__ import annotations

from eventyard.privacy.suppression import REASON
from eventyard.spec.pipeline import Dropped, PipelineEvent, StageResult
from eventyard.unify.context import StageContext


async def run(batch: list[PipelineEvent], ctx: StageContext) -> StageResult:
    suppressions = ctx.suppressions
    if suppressions is None:
        return StageResult(batch)
    kept: list[PipelineEvent] = []
    dropped: list[Dropped] = []
    for item in batch:
        found = suppressions.of_source(item.source_id)
        which = found.event(item.event) if found is not None else None
        if which is None:
            kept.append(item)
        else:
            dropped.append(Dropped(item, REASON, f"{which} is suppressed by a regulation"))
    return StageResult(kept, dropped) if dropped else StageResult(batch)

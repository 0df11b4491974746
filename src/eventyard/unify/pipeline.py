"""The order of the unify stages, written once.

Each stage is ``async def run(batch, ctx) -> StageResult``: it keeps, drops (with a reason
code) or fails events. Adding a stage is a new module and one line here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from eventyard.spec.pipeline import Dropped, Emitted, Failed, PipelineEvent, StageResult
from eventyard.unify import consent, dedupe, identity, pii, profiles, suppression, tracking_plan
from eventyard.unify.context import StageContext

Stage = Callable[[list[PipelineEvent], StageContext], Awaitable[StageResult]]

STAGES: list[tuple[str, Stage]] = [
    ("dedupe", dedupe.run),
    ("suppression", suppression.run),
    ("tracking_plan", tracking_plan.run),
    ("consent", consent.run),
    ("pii", pii.run),
    ("identity", identity.run),
    ("profiles", profiles.run),
]


async def run_pipeline(batch: list[PipelineEvent], ctx: StageContext) -> StageResult:
    """Run every stage in order; drops and failures of each stage are collected."""
    dropped: list[Dropped] = []
    failed: list[Failed] = []
    emitted: list[Emitted] = []
    current = batch
    for _name, stage in STAGES:
        if not current:
            break
        result = await stage(current, ctx)
        dropped += result.dropped
        failed += result.failed
        emitted += result.emitted
        current = result.kept
    return StageResult(current, dropped, failed, emitted)

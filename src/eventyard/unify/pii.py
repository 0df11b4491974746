"""Stage: find PII, apply the workspace's PII rules, block events that must not flow, count
what was found for the PII report.

For every event of a workspace with PII rules (``privacy.pii_rules``):

- a ``block`` rule that matches drops the event with reason ``pii_blocked``;
- ``hash``, ``mask`` and ``drop`` are applied to the event in place, so the later stages
  (identity, profiles) and every destination without an override see only the governed form;
- fields that some destination treats differently keep their received value in
  ``PipelineEvent.pii`` for the fan-out (``route.pii_transform``);
- ``(source, path, kind)`` counts are added up in memory and written to the state store at
  most once a second, in the background (:class:`Findings`): the report is a statistic, and a
  durable write per batch would make every batch wait for a second fsync.

A workspace without rules costs one dictionary lookup per event; a batch without any such
workspace costs nothing but the cached configuration check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref

from eventyard.privacy import config
from eventyard.privacy.pii_scan import process
from eventyard.spec.pipeline import Dropped, PipelineEvent, StageResult
from eventyard.state.base import PiiFinding, StateStore
from eventyard.unify.context import StageContext

REASON = "pii_blocked"
#: Counts reach the state store this long after they were first seen, at the latest.
FLUSH_SECONDS = 1.0

log = logging.getLogger(__name__)

_Key = tuple[str, str, str, str]


class Findings:
    """Counts of one state store not written yet; one background write at a time."""

    def __init__(self, state: StateStore) -> None:
        self.state = state
        self.pending: dict[_Key, list[float]] = {}
        self.task: asyncio.Task[None] | None = None

    def add(self, counts: dict[_Key, int], now: float) -> None:
        pending = self.pending
        for key, n in counts.items():
            entry = pending.get(key)
            if entry is None:
                pending[key] = [n, now, now]
            else:
                entry[0] += n
                entry[2] = now
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._later(), name="eventyard-pii-findings")

    async def _later(self) -> None:
        try:
            await asyncio.sleep(FLUSH_SECONDS)
            await self.flush()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("could not record PII findings; their counts are lost")
        finally:
            self.task = None

    async def flush(self) -> None:
        rows, self.pending = self.pending, {}
        if rows:
            await self.state.record_pii_findings(
                [PiiFinding(ws, src, path, kind, int(v[0]), v[1], v[2]) for (ws, src, path, kind), v in rows.items()]
            )


_FINDINGS: weakref.WeakKeyDictionary[StateStore, Findings] = weakref.WeakKeyDictionary()


def findings_of(state: StateStore) -> Findings:
    found = _FINDINGS.get(state)
    if found is None:
        found = _FINDINGS[state] = Findings(state)
    return found


async def flush_findings(state: StateStore) -> None:
    """Write the counts not written yet now (tests, benchmarks, shutdown)."""
    buffer = findings_of(state)
    task = buffer.task
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await buffer.flush()


async def run(batch: list[PipelineEvent], ctx: StageContext) -> StageResult:
    snap = await config.snapshot(ctx.state)
    if not snap.pii:
        return StageResult(batch)
    kept: list[PipelineEvent] = []
    dropped: list[Dropped] = []
    per_source: dict[tuple[str, str], dict[tuple[str, str], int]] = {}
    workspace_of = snap.workspace_of
    rules_of = snap.pii
    for item in batch:
        workspace = workspace_of.get(item.source_id, "")
        rules = rules_of.get(workspace)
        if rules is None:
            kept.append(item)
            continue
        scan = process(item.event, rules)
        if scan.findings:
            found = per_source.get((workspace, item.source_id))
            if found is None:
                found = per_source[(workspace, item.source_id)] = {}
            for finding in scan.findings:
                found[finding] = found.get(finding, 0) + 1
        if scan.blocked is not None:
            dropped.append(Dropped(item, REASON, scan.blocked))
            continue
        if scan.plan:
            item.pii = scan.plan
        kept.append(item)
    if per_source:
        counts = {
            (ws, src, path, kind): n for (ws, src), found in per_source.items() for (path, kind), n in found.items()
        }
        findings_of(ctx.state).add(counts, ctx.clock())
    return StageResult(kept, dropped)

"""One ingest record per request: every event of it goes through the pipeline on its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from eventyard.log import topics
from eventyard.log.memory import MemoryEventLog
from eventyard.quality.metrics import Metrics
from eventyard.spec import stored, timestamps
from eventyard.spec.normalize import Envelope
from eventyard.spec.pipeline import Failed, PipelineEvent, StageResult
from eventyard.spec.stored import Request
from eventyard.state.sqlite import SQLiteStateStore
from eventyard.testing.asgi import basic, call
from eventyard.testing.harness import running_app
from eventyard.unify import dedupe
from eventyard.unify.context import StageContext
from eventyard.unify.runner import PipelineRunner, hold_failed_records

NOW = timestamps.now()


def request_record(*events: dict[str, Any]) -> bytes:
    request = Request(Envelope(received=NOW, received_at=timestamps.format_utc(NOW)))
    raws = [msgspec.json.encode(e) for e in events]
    made_up = {i: m for i, raw in enumerate(raws) if (m := request.check(raw)) is not None}
    return request.value(raws, made_up)


def track(message_id: str) -> dict[str, Any]:
    return {"type": "track", "event": "Clicked", "userId": "u1", "messageId": message_id}


class Collect:
    """A fan-out stand-in that records what reached it."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def __call__(self, events: list[PipelineEvent]) -> Any:
        from eventyard.log.base import Transaction

        self.seen += [e.message_id for e in events]
        return Transaction()


async def runner_on(tmp_path: Path) -> tuple[MemoryEventLog, PipelineRunner, Collect]:
    log = MemoryEventLog()
    state = SQLiteStateStore(tmp_path / "state.sqlite3")
    await state.start()
    fanout = Collect()
    return log, PipelineRunner(log, StageContext(state), fanout, Metrics(), "test"), fanout


async def test_a_batch_request_is_one_record_of_its_accepted_events(tmp_path: Path) -> None:
    async with running_app(tmp_path) as h:
        body = {"batch": [track("a"), {"type": "track", "userId": "u1"}, track("c")]}
        response = await call(h.app, "POST", "/v1/batch", body, {"Authorization": basic(h.write_key)})
        assert response.status == 200, response.body
        records = await h.components.log.read(topics.INGEST, limit=100)
        assert len(records) == 1
        assert [e["messageId"] for e in msgspec.json.decode(records[0].payload)[2]] == ["a", "c"]


async def test_every_event_of_a_record_is_processed_and_a_reread_is_not_a_duplicate(tmp_path: Path) -> None:
    log, runner, fanout = await runner_on(tmp_path)
    await log.append(topics.INGEST, [("src", request_record(track("a"), track("b"), track("c")))])
    await log.append(topics.INGEST, [("src", request_record(track("b"), {**track(""), "messageId": None}))])
    assert await runner.step() == 2
    # "b" again in the second record is a repeat; the made-up messageId is not.
    assert fanout.seen[:3] == ["a", "b", "c"] and len(fanout.seen) == 4 and fanout.seen[3] not in "abc"


async def test_dedupe_tells_a_reread_record_from_a_repeated_event(tmp_path: Path) -> None:
    state = SQLiteStateStore(tmp_path / "state.sqlite3")
    await state.start()
    ctx = StageContext(state)
    value = request_record(track("x"), track("y"), track("z"))
    first = await dedupe.run(stored.pipeline_events(5, "src", value, 0.0), ctx)
    # Read again (a crash before its ack): the same positions, so nothing is a duplicate.
    again = await dedupe.run(stored.pipeline_events(5, "src", value, 0.0), ctx)
    # The same events in another record are repeats.
    repeated = await dedupe.run(stored.pipeline_events(6, "src", value, 0.0), ctx)
    assert len(first.kept) == len(again.kept) == 3 and not again.dropped
    assert not repeated.kept and [d.reason for d in repeated.dropped] == ["duplicate_message_id"] * 3


def test_a_failed_event_holds_back_its_whole_record() -> None:
    def event(record_id: int, index: int) -> PipelineEvent:
        return PipelineEvent(record_id, "src", f"{record_id}-{index}", {}, 0.0, index)

    kept = [event(1, 0), event(1, 2), event(2, 0)]
    result = hold_failed_records(StageResult(kept, [], [Failed(event(1, 1), "boom")]))
    assert [e.message_id for e in result.kept] == ["2-0"]
    assert [f.event.message_id for f in result.failed] == ["1-1"]

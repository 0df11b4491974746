"""Replay stamps events with the profile they belong to now, on SQLite and the real PostgreSQL.

The log keeps events as they were sent; the pipeline stamped them on their first pass with
the profile of that moment. After a later merge, a replay must carry the surviving profile.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from eventyard.destinations.base import Capabilities
from eventyard.log import topics
from eventyard.log.memory import MemoryEventLog
from eventyard.quality.metrics import Metrics
from eventyard.route import jobs
from eventyard.route.fanout import Fanout
from eventyard.route.replay import replay
from eventyard.route.routing import Route, Routes, RoutingTable
from eventyard.state.base import DestinationConfig
from eventyard.testing.identity import BACKENDS, Unify, postgres_available, postgres_database, unify
from eventyard.testing.services import require_service
from eventyard.unify import stamp
from eventyard.unify.restamp import for_replay
from eventyard.unify.runner import PipelineRunner


class FixedTable(RoutingTable):
    def __init__(self, routes: Routes) -> None:
        self.routes = routes

    async def current(self) -> Routes:
        return self.routes


def ev(mid: str, kind: str, at: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "messageId": mid, "timestamp": f"2026-03-01T{at}Z", "context": {}, **fields}


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str | None]:
    if not postgres_available():
        yield None
        return
    with postgres_database() as dsn:
        yield dsn


@pytest.fixture(params=BACKENDS)
async def u(request: pytest.FixtureRequest, tmp_path: Path, pg_dsn: str | None) -> AsyncIterator[Unify]:
    if request.param == "postgres":
        require_service(pg_dsn is not None, "PostgreSQL at 127.0.0.1:5432")
    async with unify(request.param, tmp_path, pg_dsn) as harness:
        yield harness


async def test_replayed_events_carry_the_profile_they_belong_to_now(u: Unify) -> None:
    config = DestinationConfig("d1", u.workspace_id, "Hook", "webhook")
    routes = {u.source_id: [Route(config, Capabilities(), ("Hook", "webhook"))]}
    fanout = Fanout(FixedTable(Routes(1, routes, {"d1": config})), Metrics())
    log = MemoryEventLog()
    runner = PipelineRunner(log, u.ctx, fanout, Metrics(), "test")

    async def ingest(*events: dict[str, Any]) -> None:
        await log.append(topics.INGEST, [(u.source_id, msgspec.json.encode(e)) for e in events])
        while await runner.step():
            pass

    await ingest(ev("p1", "page", "09:00:00", anonymousId="web-1"))
    await ingest(ev("t1", "track", "09:05:00", anonymousId="ios-1", event="Opened"))
    await ingest(ev("i1", "identify", "10:00:00", anonymousId="web-1", userId="sam"))
    await ingest(ev("i2", "identify", "10:01:00", anonymousId="ios-1", userId="sam"))
    # a page nobody can be found by: all its identifiers are blocked
    await ingest(ev("b1", "page", "10:02:00", anonymousId="null"))

    def stamps() -> dict[str, str | None]:
        return {j.message_id: stamp.stamped(j.event)[0] for j in (jobs.decode(r.payload) for r in queued)}

    queued = await log.read(topics.deliver("d1"))
    first = stamps()
    assert first["p1"] != first["t1"]  # two devices, two profiles on the first pass
    sam = await u.find("user_id:sam")
    assert sam is not None
    merged_away = first["t1"] if first["p1"] == sam.id else first["p1"]
    assert merged_away != sam.id and await u.current(str(merged_away)) == sam.id

    before = len(queued)
    result = await replay(log, fanout, "d1", 0, 2**40, restamp=for_replay(u.identity))
    assert (result.read, result.queued) == (5, 5)
    queued = (await log.read(topics.deliver("d1")))[before:]
    assert stamps() == {"p1": sam.id, "t1": sam.id, "i1": sam.id, "i2": sam.id, "b1": None}

    # without identity resolution a replay has nothing to stamp with
    assert for_replay(None) is None
    plain = await replay(log, fanout, "d1", 0, 2**40)
    queued = (await log.read(topics.deliver("d1")))[before + 5 :]
    assert plain.queued == 5 and set(stamps().values()) == {None}

"""The regulation runner: order of the stores, retries on a fake clock, giving up, NOT_SUPPORTED,
resuming after a restart, and which destinations each type reaches."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from eventyard.destinations.base import DeleteSubject, DeliveryEvent, Destination, DestinationContext, Outcome
from eventyard.log.memory import MemoryEventLog
from eventyard.privacy.deletion import DestinationSource
from eventyard.privacy.regulations import create_regulation
from eventyard.privacy.runner import RegulationRunner
from eventyard.state.base import StateStore
from eventyard.state.identity_base import GraphTx, IdentifierRow, ProfileRow
from eventyard.state.identity_sqlite import SQLiteIdentityStore
from eventyard.state.sqlite import SQLiteStateStore
from eventyard.testing.clock import FakeClock
from eventyard.warehouse.identity_tables import decode_change


class ScriptedDestination(Destination):
    """Answers ``delete_user`` from a script and remembers who it was asked to delete."""

    name = "scripted"

    def __init__(self, answers: list[Outcome]) -> None:
        super().__init__(None, DestinationContext("d", "scripted", Path(".")))
        self.answers = answers
        self.asked: list[DeleteSubject] = []

    async def deliver(self, batch: Sequence[DeliveryEvent]) -> list[Outcome]:
        return [Outcome.delivered()] * len(batch)

    async def delete_user(self, subject: DeleteSubject) -> Outcome:
        self.asked.append(subject)
        return self.answers.pop(0) if self.answers else Outcome.delivered()


class World:
    def __init__(self, state: StateStore, identity: SQLiteIdentityStore, tmp: Path) -> None:
        self.state = state
        self.identity = identity
        self.log = MemoryEventLog()
        self.clock = FakeClock(1000.0)
        self.running: dict[str, Destination] = {}
        self.tmp = tmp
        self.ws = ""

    def runner(self, **kw: float) -> RegulationRunner:
        source = DestinationSource(lambda: self.running, self.tmp)
        return RegulationRunner(self.state, self.log, self.identity, source, clock=self.clock, **kw)  # type: ignore[arg-type]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    state = SQLiteStateStore(tmp_path / "state.sqlite3")
    identity = SQLiteIdentityStore(tmp_path / "identity.sqlite3")
    await state.start()
    await identity.start()
    w = World(state, identity, tmp_path)
    w.ws = (await state.create_workspace("default")).id

    def profile(tx: GraphTx) -> None:
        tx.insert_profiles([ProfileRow("p-ana", w.ws, "users", 1.0, 1.0)])
        tx.upsert_identifiers(
            [
                IdentifierRow(w.ws, "users", key, "p-ana", 1.0, "m1", "src", "p-ana", 1.0)
                for key in ("user_id:ana", "anonymous_id:dev-1", "anonymous_id:dev-2", "email:ana@example.com")
            ]
        )

    await identity.transact(profile)
    try:
        yield w
    finally:
        await identity.close()
        await state.close()


async def hook(w: World, name: str = "hook", deletes: bool = True) -> str:
    config = await w.state.create_destination(
        w.ws, name, "webhook", settings={"url": "http://127.0.0.1:9/x", "delete_events": deletes}
    )
    return config.id


async def test_a_destination_is_retried_on_the_clock_and_identity_goes_last(world: World) -> None:
    dest_id = await hook(world)
    scripted = ScriptedDestination([Outcome.retry("503 from the tool", retry_after=90), Outcome.retry("again")])
    world.running[dest_id] = scripted
    reg = await create_regulation(world.state, world.ws, "DELETE_ONLY", "USER_ID", ["ana"])
    runner = world.runner(retry_seconds=10)

    await runner.step()
    reg_now = await world.state.get_regulation(reg.id)
    assert reg_now is not None
    stores = reg_now.stores
    assert stores["log"].status == "FINISHED"
    assert stores[f"destination:{dest_id}"].status == "RUNNING"
    assert "attempt 1 failed: hook: 503 from the tool; retrying in 90s" in stores[f"destination:{dest_id}"].detail
    assert stores["identity"].status == "INITIALIZED"  # waits for the destination
    assert reg_now.status == "RUNNING"

    world.clock.advance(89)
    assert await runner.step() == 0  # not due yet
    world.clock.advance(1)
    await runner.step()  # second failure: 20 s (10 s doubled)
    world.clock.advance(20)
    await runner.step()

    done = await world.state.get_regulation(reg.id)
    assert done is not None and done.status == "FINISHED" and done.finished_at is not None
    assert done.stores["identity"].removed["profiles"] == 1
    assert [(s.user_id, s.identifiers) for s in scripted.asked][-1] == (
        "ana",
        {"anonymousId": "dev-1", "anonymousId.2": "dev-2", "email": "ana@example.com"},
    )
    assert await world.identity.read(lambda tx: tx.lookup(world.ws, "users", ["user_id:ana"])) == {}
    # the warehouses' identity tables are told to drop the identifiers (through the identity feed)
    (change,) = [
        decode_change(body) for _, body in await world.identity.read(lambda tx: tx.changes_after(world.ws, 0, 10))
    ]
    assert sorted(key for _, key in change.deleted) == [
        "anonymous_id:dev-1",
        "anonymous_id:dev-2",
        "email:ana@example.com",
        "user_id:ana",
    ]


async def test_a_store_that_keeps_failing_is_failed_and_the_rest_still_finish(world: World) -> None:
    dest_id = await hook(world)
    world.running[dest_id] = ScriptedDestination([Outcome.retry("down")] * 5)
    reg = await create_regulation(world.state, world.ws, "SUPPRESS_WITH_DELETE", "USER_ID", ["ana"])
    runner = world.runner(retry_seconds=1, max_attempts=2)
    await runner.step()
    world.clock.advance(1)
    await runner.step()
    got = await world.state.get_regulation(reg.id)
    assert got is not None and got.status == "PARTIAL_SUCCESS"
    assert got.stores[f"destination:{dest_id}"].status == "FAILED"
    assert "gave up after 2 attempts" in got.stores[f"destination:{dest_id}"].detail
    assert {k: v.status for k, v in got.stores.items() if not k.startswith("destination:")} == {
        "suppression": "FINISHED",
        "log": "FINISHED",
        "identity": "FINISHED",
    }


async def test_a_terminal_refusal_fails_at_once(world: World) -> None:
    dest_id = await hook(world)
    world.running[dest_id] = ScriptedDestination([Outcome.failed("401 unauthorized")])
    reg = await create_regulation(world.state, world.ws, "DELETE_ONLY", "USER_ID", ["ana"])
    await world.runner().step()
    got = await world.state.get_regulation(reg.id)
    assert got is not None
    assert (got.stores[f"destination:{dest_id}"].status, got.stores[f"destination:{dest_id}"].detail) == (
        "FAILED",
        "hook: 401 unauthorized",
    )


async def test_destinations_that_cannot_delete_are_not_supported(world: World) -> None:
    silent = await hook(world, "silent", deletes=False)
    gone = await hook(world, "gone")
    reg = await create_regulation(world.state, world.ws, "DELETE_ONLY", "USER_ID", ["ana"])
    await world.state.update_destination(gone, settings={"url": "not a url at all"})
    world.running.clear()
    # a destination deleted from the configuration after the regulation was made
    reg = await world.state.set_regulation_store(reg.id, "destination:dst_missing", "INITIALIZED")
    await world.runner().step()
    got = await world.state.get_regulation(reg.id)
    assert got is not None and got.status == "PARTIAL_SUCCESS"
    assert got.stores[f"destination:{silent}"].status == "NOT_SUPPORTED"
    assert "cannot delete users" in got.stores[f"destination:{silent}"].detail
    assert got.stores["destination:dst_missing"].status == "NOT_SUPPORTED"
    assert got.stores[f"destination:{gone}"].status == "FAILED"  # its settings no longer validate


async def test_a_new_runner_resumes_what_a_stopped_one_left(world: World) -> None:
    await world.log.append("ingest", [("src", b'[1,{"r":"2026-01-01T00:00:00Z"},[{"type":"track","userId":"ana"}]]')])
    reg = await create_regulation(world.state, world.ws, "DELETE_INTERNAL", "USER_ID", ["ana"])
    await world.state.set_regulation_store(reg.id, "log", "RUNNING", detail="working")  # then the process died
    assert await world.runner().step() == 2
    got = await world.state.get_regulation(reg.id)
    assert got is not None and got.status == "FINISHED"
    assert got.stores["log"].removed["ingest_records_deleted"] == 1
    assert await world.log.read("ingest") == []
    assert await world.runner().step() == 0  # nothing left to do


async def test_internal_types_skip_destinations_that_forward_data(world: World) -> None:
    hook_id = await hook(world)
    files = await world.state.create_destination(world.ws, "files", "file", settings={"path": str(world.tmp / "f")})
    internal = await create_regulation(world.state, world.ws, "DELETE_INTERNAL", "USER_ID", ["ana"])
    full = await create_regulation(world.state, world.ws, "DELETE_ONLY", "USER_ID", ["ana"])
    assert set(internal.stores) == {"log", "identity", f"destination:{files.id}"}
    assert set(full.stores) == {"log", "identity", f"destination:{files.id}", f"destination:{hook_id}"}
    suppress = await create_regulation(world.state, world.ws, "SUPPRESS_ONLY", "USER_ID", ["ana"])
    assert set(suppress.stores) == {"suppression"} and suppress.status == "FINISHED"

"""The warehouses' identity tables, end to end: events through the unify stages, the change
records through the identity feed into DuckDB and the real PostgreSQL, and SQL joins of the
loaded events to their current profile.

Identity store and warehouse each run on SQLite/DuckDB and on the real PostgreSQL.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pg_warehouse_support import new_prefix

from eventyard.destinations.base import DeliveryEvent, Destination, DestinationContext
from eventyard.destinations.duckdb import identity as duckdb_identity
from eventyard.destinations.duckdb.destination import DuckDBDestination
from eventyard.destinations.duckdb.settings import DuckDBSettings
from eventyard.destinations.postgres.destination import PostgresDestination
from eventyard.destinations.postgres.settings import PostgresSettings
from eventyard.route.identity_feed import IdentityFeed
from eventyard.spec.pipeline import PipelineEvent
from eventyard.state.base import DestinationConfig
from eventyard.state.identity_base import GraphTx
from eventyard.testing.identity import Unify, postgres_available, postgres_database, unify
from eventyard.testing.services import require_service
from eventyard.unify import stamp
from eventyard.warehouse.identity_tables import Change, PositionMoved, plan_identity_load

_ids = itertools.count(1)
COMBINATIONS = [("sqlite", "duckdb"), ("postgres", "duckdb"), ("sqlite", "postgres"), ("postgres", "postgres")]


def ev(kind: str, at: str, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": kind,
        "messageId": f"w{next(_ids)}",
        "context": fields.pop("context", {}),
        "timestamp": f"2026-03-01T{at}Z",
        "receivedAt": f"2026-03-01T{at}Z",
    }
    event.update(fields)
    return event


@dataclass
class Setup:
    u: Unify
    destination: Destination
    feed: IdentityFeed
    kind: str
    dsn: str | None
    delivered: list[PipelineEvent]

    async def send(self, *events: dict[str, Any]) -> list[PipelineEvent]:
        kept = await self.u.send(*events)
        outcomes = await self.destination.deliver(
            [DeliveryEvent(e.event, e.event, e.message_id, source_id=e.source_id) for e in kept]
        )
        assert all(o.kind == "delivered" for o in outcomes), outcomes
        self.delivered += kept
        return kept

    async def sql(self, text: str) -> list[tuple[Any, ...]]:
        if isinstance(self.destination, DuckDBDestination):
            result = await self.destination.query(text, 10_000)
            return [tuple(r) for r in result.rows]
        assert self.dsn is not None
        async with await psycopg.AsyncConnection.connect(self.dsn) as conn:
            cur = await conn.execute(text.encode())
            return [tuple(r) for r in await cur.fetchall()]


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str | None]:
    if not postgres_available():
        yield None
        return
    with postgres_database() as dsn:
        yield dsn


@pytest.fixture(params=COMBINATIONS, ids=lambda p: f"{p[0]}-graph-{p[1]}-warehouse")
async def setup(request: pytest.FixtureRequest, tmp_path: Path, pg_dsn: str | None) -> AsyncIterator[Setup]:
    store_kind, warehouse = request.param
    if "postgres" in request.param:
        require_service(pg_dsn is not None, "PostgreSQL at 127.0.0.1:5432")
    async with unify(store_kind, tmp_path / "unify", pg_dsn) as u:
        context = DestinationContext("dst_1", "warehouse", tmp_path / "dest")
        destination: Destination
        if warehouse == "duckdb":
            settings: Any = DuckDBSettings(path=str(tmp_path / "w.duckdb"), schemas={u.source_id: "web"})
            destination = DuckDBDestination(settings, context)
        else:
            assert pg_dsn is not None
            schema = new_prefix() + "identity"  # letters only: snake_case leaves it alone
            settings = PostgresSettings(dsn=pg_dsn, schemas={u.source_id: f"{schema}_web"}, identity_schema=schema)
            destination = PostgresDestination(settings, context)
        await destination.start()
        config = DestinationConfig(
            id="dst_1", workspace_id=u.workspace_id, name="warehouse", type=warehouse, settings={}, enabled=True
        )
        feed = IdentityFeed(u.identity.store, lambda: [(config, destination)])
        try:
            yield Setup(u, destination, feed, warehouse, pg_dsn, [])
        finally:
            await destination.close()


def schema_of(s: Setup) -> str:
    settings: Any = s.destination.settings
    return str(settings.identity_schema)


def web_schema(s: Setup) -> str:
    settings: Any = s.destination.settings
    return str(next(iter(settings.schemas.values())))


async def test_events_join_their_current_profile_through_the_identity_tables(setup: Setup) -> None:
    s = setup
    ids = schema_of(s)
    web = await s.send(ev("page", "09:00:00", anonymousId="web-1", name="Home"))
    phone = await s.send(ev("track", "09:05:00", anonymousId="ios-1", event="Opened"))
    assert await s.feed.sync() >= 0  # first round: a full load of what is there
    profiles = dict(await s.sql(f'SELECT profile_id, canonical_profile_id FROM "{ids}".profiles'))
    web_profile = stamp.stamped(web[0].event)[0]
    phone_profile = stamp.stamped(phone[0].event)[0]
    assert profiles == {web_profile: web_profile, phone_profile: phone_profile}

    # sam signs in on both devices: the phone's profile is merged into the web one
    await s.send(ev("identify", "10:00:00", anonymousId="web-1", userId="sam", traits={"email": "sam@x.io"}))
    await s.send(ev("identify", "10:01:00", anonymousId="ios-1", userId="sam"))
    assert await s.feed.sync() == 2
    sam = await s.u.find("user_id:sam")
    assert sam is not None
    rows = await s.sql(f'SELECT identifier_type, identifier_value, profile_id FROM "{ids}".identifiers ORDER BY 1, 2')
    assert rows == [
        ("anonymous_id", "ios-1", sam.id),
        ("anonymous_id", "web-1", sam.id),
        ("email", "sam@x.io", sam.id),
        ("user_id", "sam", sam.id),
    ]
    merges = await s.sql(f'SELECT from_profile_id, into_profile_id, rule, undone_at FROM "{ids}".merges')
    assert len(merges) == 1 and merges[0][1] == sam.id and merges[0][2] == "shared_identifier" and merges[0][3] is None
    # every event, stamped with the profile of its time, joins to sam's profile now
    joined = await s.sql(
        f'SELECT p.canonical_profile_id, count(*) FROM "{web_schema(s)}".tracks t '
        f'JOIN "{ids}".profiles p ON p.profile_id = t.context_eventyard_profile_id GROUP BY 1'
    )
    assert joined == [(sam.id, 1)]
    pages = await s.sql(
        f'SELECT p.canonical_profile_id FROM "{web_schema(s)}".pages t '
        f'JOIN "{ids}".profiles p ON p.profile_id = t.context_eventyard_profile_id'
    )
    assert pages == [(sam.id,)]
    assert await s.feed.sync() == 0  # nothing new: nothing loaded

    # the operator splits the merge: the phone's profile gets its id back, in the warehouse too
    merge_id = int((await s.u.explain("user_id:sam"))["merges"][0]["id"])
    await s.u.identity.split(s.u.workspace_id, sam.id, merge_id)
    assert await s.feed.sync() == 1
    profiles = dict(await s.sql(f'SELECT profile_id, canonical_profile_id FROM "{ids}".profiles'))
    restored = phone_profile if sam.id == web_profile else web_profile
    assert profiles[restored] == restored
    undone = await s.sql(f'SELECT undone_at IS NOT NULL FROM "{ids}".merges')
    assert undone == [(True,)]
    owner = dict(
        await s.sql(
            f"SELECT identifier_value, profile_id FROM \"{ids}\".identifiers WHERE identifier_type = 'anonymous_id'"
        )
    )
    assert owner[{web_profile: "web-1", phone_profile: "ios-1"}[restored]] == restored


async def test_a_failed_load_changes_nothing_and_the_next_round_catches_up(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = setup
    ids = schema_of(s)
    await s.send(ev("identify", "09:00:00", anonymousId="a-1", userId="kim"))
    await s.feed.sync()
    await s.send(ev("identify", "09:01:00", anonymousId="a-2", userId="kim"))

    import eventyard.warehouse.identity_tables as tables

    real = tables.statements

    def broken(*args: Any) -> list[str]:
        return [*real(*args), f"SELECT no_such_column FROM no_such_table WHERE 1 = {args[-1]}"]

    monkeypatch.setattr(duckdb_identity, "statements", broken)
    from eventyard.destinations.postgres import identity as pg_identity

    monkeypatch.setattr(pg_identity, "statements", broken)
    assert await s.feed.sync() == 0
    assert s.feed.errors and "no_such" in next(iter(s.feed.errors.values()))
    before = await s.sql(f"SELECT identifier_value FROM \"{ids}\".identifiers WHERE identifier_type = 'anonymous_id'")
    assert before == [("a-1",)]  # the failed load was rolled back: its position did not move either
    monkeypatch.undo()
    assert await s.feed.sync() == 1
    assert not s.feed.errors
    after = await s.sql(
        f"SELECT identifier_value FROM \"{ids}\".identifiers WHERE identifier_type = 'anonymous_id' ORDER BY 1"
    )
    assert after == [("a-1",), ("a-2",)]


async def test_a_warehouse_behind_the_purged_records_gets_a_full_load(setup: Setup) -> None:
    s = setup
    ids = schema_of(s)
    await s.send(ev("identify", "09:00:00", anonymousId="b-1", userId="lee"))
    await s.feed.sync()
    await s.send(ev("identify", "09:01:00", anonymousId="b-2", userId="lee"))

    def purge(tx: GraphTx) -> int:
        return tx.purge_changes(float("inf"))

    assert await s.u.identity.store.transact(purge) >= 1
    await s.feed.sync()
    rows = await s.sql(
        f"SELECT identifier_value FROM \"{ids}\".identifiers WHERE identifier_type = 'anonymous_id' ORDER BY 1"
    )
    assert rows == [("b-1",), ("b-2",)]
    position = await s.destination.identity_position(s.u.workspace_id)  # type: ignore[attr-defined]
    last = await s.u.identity.store.read(lambda tx: tx.last_change())
    assert position == last


async def test_a_load_from_a_stale_position_is_refused(setup: Setup) -> None:
    """Two processes following one warehouse: the one that read an older position loads nothing."""
    s = setup
    await s.send(ev("identify", "09:00:00", anonymousId="c-1", userId="max"))
    await s.feed.sync()
    position = await s.destination.identity_position(s.u.workspace_id)  # type: ignore[attr-defined]
    assert position is not None
    stale = plan_identity_load(s.u.workspace_id, [(position + 5, Change(full=True))], datetime.now(UTC), position - 1)
    with pytest.raises(PositionMoved):
        await s.destination.load_identity(stale)  # type: ignore[attr-defined]
    rows = await s.sql(f'SELECT count(*) FROM "{schema_of(s)}".identifiers')
    assert rows == [(2,)]  # the full (emptying) load did not run
    assert await s.destination.identity_position(s.u.workspace_id) == position  # type: ignore[attr-defined]

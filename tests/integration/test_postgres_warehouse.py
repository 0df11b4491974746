"""The PostgreSQL warehouse destination against the real server on 127.0.0.1:5432.

Every test loads into its own schemas (a random prefix) of one throwaway database.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pg_warehouse_support import fresh_database, new_prefix, postgres_is_up

from eventyard.destinations.base import (
    DeleteSubject,
    DeliveryEvent,
    DestinationContext,
    DestinationServices,
    DiscardReport,
)
from eventyard.destinations.postgres import PostgresDestination, PostgresSettings
from eventyard.errors import ConfigError, Unavailable
from eventyard.testing import events
from eventyard.testing.services import require_service

SOURCE = "web"


@pytest.fixture(scope="module")
def dsn() -> Iterator[str]:
    require_service(postgres_is_up(), "PostgreSQL on 127.0.0.1:5432")
    with fresh_database() as url:
        yield url


class Warehouse:
    """A destination on fresh schemas, and queries against them."""

    def __init__(self, dsn: str, tmp_path: Path) -> None:
        self.dsn = dsn
        self.prefix = new_prefix()
        self.schema = self.prefix + SOURCE
        self.tmp_path = tmp_path
        self.destinations: list[PostgresDestination] = []

    def destination(self, **overrides: Any) -> PostgresDestination:
        settings = PostgresSettings(**{"dsn": self.dsn, "schema_prefix": self.prefix, **overrides})
        context = DestinationContext(f"dst-pg-{len(self.destinations)}", "warehouse", self.tmp_path)
        destination = PostgresDestination(settings, context)
        self.destinations.append(destination)
        return destination

    async def query(self, text: str, *params: Any) -> list[tuple[Any, ...]]:
        async with await psycopg.AsyncConnection.connect(self.dsn, options="-c TimeZone=UTC") as conn:
            cur = await conn.execute(text.replace("{s}", f'"{self.schema}"'), params or None)
            return list(await cur.fetchall())

    async def execute(self, text: str) -> None:
        async with await psycopg.AsyncConnection.connect(self.dsn, autocommit=True) as conn:
            await conn.execute(text.replace("{s}", f'"{self.schema}"'))

    async def columns(self, table: str) -> dict[str, str]:
        found = await self.query(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
            self.schema,
            table,
        )
        return {str(name): str(kind) for name, kind in found}

    async def tables(self) -> set[str]:
        found = await self.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", self.schema
        )
        return {str(r[0]) for r in found}


@pytest.fixture
async def wh(dsn: str, tmp_path: Path) -> AsyncIterator[Warehouse]:
    warehouse = Warehouse(dsn, tmp_path)
    try:
        yield warehouse
    finally:
        for destination in warehouse.destinations:
            await destination.close()


def deliveries(*items: dict[str, Any]) -> list[DeliveryEvent]:
    return [events.delivery(e, source_id=SOURCE) for e in items]


async def load(destination: PostgresDestination, *items: dict[str, Any]) -> None:
    outcomes = await destination.deliver(deliveries(*items))
    assert [o.kind for o in outcomes] == ["delivered"] * len(items), outcomes


async def test_every_call_type_lands_in_segments_tables(wh: Warehouse) -> None:
    d = wh.destination()
    await load(d, *(events.of_type(kind, i, prefix="schema") for i, kind in enumerate(events.TYPES)))
    assert {
        "tracks",
        "order_completed",
        "identifies",
        "users",
        "pages",
        "screens",
        "groups",
        "aliases",
    } <= await wh.tables()
    standard = {"id", "anonymous_id", "user_id", "received_at", "sent_at", "original_timestamp", "timestamp", "uuid_ts"}
    tracks = await wh.columns("tracks")
    assert standard | {"event", "event_text", "context_library_name", "context_ip", "context_user_agent"} <= set(tracks)
    assert tracks["received_at"] == "timestamp with time zone" and tracks["id"] == "text"
    order = await wh.columns("order_completed")
    assert {"order_id": "text", "revenue": "double precision", "products": "text"}.items() <= order.items()
    users = await wh.columns("users")
    assert {"id", "received_at", "email", "plan", "age"} <= set(users) and "anonymous_id" not in users
    assert users["age"] == "bigint"
    assert {"name", "title", "url", "path"} <= set(await wh.columns("pages"))
    assert {"name", "step", "cart_items"} <= set(await wh.columns("screens"))
    assert {"group_id", "industry", "employees"} <= set(await wh.columns("groups"))
    assert "previous_id" in await wh.columns("aliases")
    [(event, text, products)] = await wh.query(
        "SELECT t.event, t.event_text, o.products FROM {s}.tracks t JOIN {s}.order_completed o USING (id)"
    )
    assert (event, text) == ("order_completed", "Order Completed")
    assert products == '[{"sku":"SKU-7","quantity":2}]'
    [(pk,)] = await wh.query(
        "SELECT count(*) FROM information_schema.table_constraints WHERE table_schema = %s "
        "AND table_name = 'tracks' AND constraint_type = 'PRIMARY KEY'",
        wh.schema,
    )
    assert pk == 1


async def test_golden_queries_a_segment_user_runs(wh: Warehouse) -> None:
    d = wh.destination()
    day = events.BASE_TIME
    batch: list[dict[str, Any]] = []
    for i in range(6):  # 4 views on day 1, 2 on day 2; u1 and u2 go on to buy on day 2
        at = day + timedelta(days=i // 4, hours=i)
        batch.append(events.track("Product Viewed", {"sku": "S"}, message_id=f"pv-{i}", at=at, user_id=f"u{i}"))
    for u in (1, 2):
        at = day + timedelta(days=1, hours=20)
        batch.append(events.track("Order Completed", {"total": 10}, message_id=f"oc-{u}", at=at, user_id=f"u{u}"))
    # u5 bought before it viewed: not a funnel conversion
    batch.append(events.track("Order Completed", {"total": 5}, message_id="oc-5", at=day, user_id="u5"))
    await load(d, *batch)
    # a newer identify first, the older one after it: users keeps the newest traits, fills the gaps
    newer = events.identify({"plan": "enterprise"}, message_id="id-2", at=day + timedelta(days=2), user_id="u1")
    older = events.identify({"plan": "free", "email": "u1@example.com"}, message_id="id-1", at=day, user_id="u1")
    await load(d, newer)
    await load(d, older)

    per_day = await wh.query(
        "SELECT date_trunc('day', received_at)::date::text, event, count(*) FROM {s}.tracks GROUP BY 1, 2 ORDER BY 1, 2"
    )
    assert per_day == [
        ("2026-11-29", "order_completed", 1),
        ("2026-11-29", "product_viewed", 4),
        ("2026-11-30", "order_completed", 2),
        ("2026-11-30", "product_viewed", 2),
    ]
    assert await wh.query("SELECT id, plan, email FROM {s}.users") == [("u1", "enterprise", "u1@example.com")]
    funnel = await wh.query(
        """
        SELECT count(DISTINCT v.user_id), count(DISTINCT o.user_id)
        FROM {s}.product_viewed v
        LEFT JOIN {s}.order_completed o ON o.user_id = v.user_id AND o.timestamp > v.timestamp
        """
    )
    assert funnel == [(6, 2)]


async def test_columns_widen_from_integer_to_float_to_text(wh: Warehouse) -> None:
    d = wh.destination()
    await load(d, events.track("Bought", {"amount": 3}, message_id="w-1"))
    assert (await wh.columns("bought"))["amount"] == "bigint"
    await load(d, events.track("Bought", {"amount": 2.5}, message_id="w-2"))
    assert (await wh.columns("bought"))["amount"] == "double precision"
    await load(d, events.track("Bought", {"amount": "lots"}, message_id="w-3"))
    assert (await wh.columns("bought"))["amount"] == "text"
    rows = await wh.query("SELECT id, amount FROM {s}.bought ORDER BY id")
    assert rows == [("w-1", "3"), ("w-2", "2.5"), ("w-3", "lots")]
    assert await wh.query(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'discards' AND table_schema = %s", wh.schema
    ) == [(0,)]


async def test_values_that_fit_no_column_go_to_discards(wh: Warehouse) -> None:
    d = wh.destination()
    await load(d, events.track("Signed Up", {"trial_end": "2026-12-29T00:00:00Z", "paid": True}, message_id="d-1"))
    bad = events.track("Signed Up", {"trial_end": "next month", "paid": 1, "id": "mine"}, message_id="d-2")
    await load(d, bad)
    await load(d, bad)  # a replay adds no second discard
    assert await wh.query("SELECT id, trial_end IS NULL, paid FROM {s}.signed_up ORDER BY id") == [
        ("d-1", False, True),
        ("d-2", True, None),
    ]
    discards = await wh.query(
        "SELECT table_name, column_name, row_id, column_value, reason FROM {s}.discards ORDER BY column_name"
    )
    assert discards == [
        ("signed_up", "id", "d-2", "mine", "reserved_column"),
        ("signed_up", "paid", "d-2", "1", "not_boolean"),
        ("signed_up", "trial_end", "d-2", "next month", "not_timestamp"),
    ]


async def test_replaying_a_batch_adds_nothing(wh: Warehouse) -> None:
    d = wh.destination()
    batch = events.sample(60, prefix="replay")
    await load(d, *batch)
    counts = await wh.query(
        "SELECT (SELECT count(*) FROM {s}.tracks), (SELECT count(*) FROM {s}.users), "
        "(SELECT count(*) FROM {s}.identifies), (SELECT count(*) FROM {s}.aliases)"
    )
    users = await wh.query("SELECT * FROM {s}.users ORDER BY id")
    await load(d, *batch)
    assert (
        await wh.query(
            "SELECT (SELECT count(*) FROM {s}.tracks), (SELECT count(*) FROM {s}.users), "
            "(SELECT count(*) FROM {s}.identifies), (SELECT count(*) FROM {s}.aliases)"
        )
        == counts
    )
    assert counts == [(10, 10, 10, 10)]
    again = await wh.query("SELECT * FROM {s}.users ORDER BY id")
    assert [r[:1] + r[3:] for r in again] == [r[:1] + r[3:] for r in users] or again == users


async def test_two_loaders_into_the_same_tables_at_once(wh: Warehouse) -> None:
    first, second = wh.destination(), wh.destination()
    a = events.sample(300, prefix="a")
    b = events.sample(300, prefix="b")
    both = events.sample(60, prefix="shared")
    # new property columns in both at once, so both want to ALTER the same tables
    a += [events.track("Order Completed", {"only_a": i}, message_id=f"xa-{i}") for i in range(5)]
    b += [events.track("Order Completed", {"only_b": "x"}, message_id=f"xb-{i}") for i in range(5)]
    outcomes = await asyncio.gather(
        first.deliver(deliveries(*a, *both)),
        second.deliver(deliveries(*b, *both)),
        first.deliver(deliveries(*both)),
    )
    assert {o.kind for batch in outcomes for o in batch} == {"delivered"}
    [(tracks, orders)] = await wh.query(
        "SELECT (SELECT count(*) FROM {s}.tracks), (SELECT count(*) FROM {s}.order_completed)"
    )
    assert tracks == orders == 50 + 50 + 10 + 10
    assert {"only_a", "only_b"} <= set(await wh.columns("order_completed"))


async def test_delete_user_removes_their_rows_everywhere(wh: Warehouse) -> None:
    d = wh.destination()
    keep = events.sample(12, prefix="keep")
    gone = [
        events.track("Signed Up", {"paid": True}, message_id="gone-1", user_id="leaver"),
        events.identify({"email": "leaver@example.com"}, message_id="gone-2", user_id="leaver"),
        events.page(message_id="gone-3", user_id="leaver"),
        events.track("Signed Up", {"paid": "yes"}, message_id="gone-4", user_id="leaver"),  # a discard
    ]
    await load(d, *keep, *gone)
    # another user's discard (text in the boolean column), which must survive the deletion
    await load(d, events.track("Signed Up", {"paid": "maybe"}, message_id="stay-1", user_id="stayer"))
    elsewhere = [events.track("Signed Up", message_id=f"app-{i}", user_id=u) for i, u in enumerate(["leaver", "u"])]
    outcomes = await d.deliver([events.delivery(e, source_id="app") for e in elsewhere])
    assert {o.kind for o in outcomes} == {"delivered"}
    outcome = await d.delete_user(DeleteSubject(user_id="leaver"))
    assert outcome.kind == "delivered"
    for table in ("tracks", "signed_up", "identifies", "pages"):
        assert await wh.query(f"SELECT count(*) FROM {{s}}.{table} WHERE user_id = 'leaver'") == [(0,)]
    assert await wh.query("SELECT count(*) FROM {s}.users WHERE id = 'leaver'") == [(0,)]
    assert await wh.query("SELECT count(*) FROM {s}.discards WHERE row_id LIKE 'gone-%%' OR row_id = 'leaver'") == [
        (0,)
    ]
    assert await wh.query("SELECT count(*) FROM {s}.discards") != [(0,)]  # other users' discards stay
    assert await wh.query("SELECT count(*) FROM {s}.tracks") == [(3,)]
    assert await wh.query("SELECT count(*) FROM {s}.users") == [(2,)]
    assert await wh.query(f'SELECT user_id FROM "{wh.prefix}app".tracks') == [("u",)]


async def test_delete_user_reaches_every_anonymous_id_even_in_tables_without_user_ids(wh: Warehouse) -> None:
    d = wh.destination()
    await load(
        d,
        events.page(message_id="p1", user_id=None, anonymous_id="dev-1"),  # pages gets no user_id column
        events.page(message_id="p2", user_id=None, anonymous_id="dev-2"),
        events.page(message_id="p3", user_id=None, anonymous_id="dev-other"),
        events.track("Signed Up", message_id="t1", user_id="ana", anonymous_id="dev-3"),
    )
    subject = DeleteSubject("ana", {"anonymousId": "dev-1", "anonymousId.2": "dev-2", "email": "a@b.c"})
    assert (await d.delete_user(subject)).kind == "delivered"
    assert await wh.query("SELECT anonymous_id FROM {s}.pages") == [("dev-other",)]
    assert await wh.query("SELECT count(*) FROM {s}.tracks") == [(0,)]
    deleted: dict[str, int] = getattr(d, "deleted", {})
    assert deleted["rows"] >= 4  # pages, tracks, signed_up and the users row


async def test_a_table_over_the_column_cap_fails_only_its_events(wh: Warehouse) -> None:
    d = wh.destination()
    wide = events.track("Wide", {f"p{i}": i for i in range(1700)}, message_id="cap-1")
    fine = events.page(message_id="cap-2")
    outcomes = await d.deliver(deliveries(wide, fine))
    assert outcomes[0].kind == "failed" and "1600" in outcomes[0].error, outcomes[0]
    assert outcomes[1].kind == "delivered"
    assert await wh.tables() == {"pages"}


async def test_unreachable_server_means_retry_and_check_says_why(wh: Warehouse) -> None:
    down = wh.destination(dsn="postgresql://postgres@127.0.0.1:1/nowhere", connect_timeout_seconds=2)
    [outcome] = await down.deliver(deliveries(events.page(message_id="down-1")))
    assert outcome.kind == "retry" and "PostgreSQL" in outcome.error
    with pytest.raises(Unavailable):
        await down.check()
    base = wh.dsn.rsplit("/", 1)[0]
    missing = wh.destination(dsn=f"{base}/no_such_database_eventyard")
    [outcome] = await missing.deliver(deliveries(events.page(message_id="down-2")))
    assert outcome.kind == "failed" and "no_such_database_eventyard" in outcome.error
    with pytest.raises(ConfigError, match="no_such_database_eventyard"):
        await missing.check()
    await wh.destination().check()
    assert await wh.tables() == set()


async def test_permission_denied_is_a_terminal_failure(wh: Warehouse) -> None:
    role = wh.prefix + "reader"
    await wh.query("SELECT 1")
    async with await psycopg.AsyncConnection.connect(wh.dsn, autocommit=True) as conn:
        await conn.execute(f'CREATE ROLE "{role}" LOGIN')
        await conn.execute(f"REVOKE CREATE ON DATABASE {wh.dsn.rsplit('/', 1)[1]} FROM PUBLIC")
        try:
            base = wh.dsn.split("postgres@", 1)[1]
            d = wh.destination(dsn=f"postgresql://{role}@{base}")
            [outcome] = await d.deliver(deliveries(events.page(message_id="perm-1")))
            assert outcome.kind == "failed" and "permission denied" in outcome.error, outcome
            await d.close()
        finally:
            await conn.execute(f"GRANT CREATE ON DATABASE {wh.dsn.rsplit('/', 1)[1]} TO PUBLIC")
            await conn.execute(f'DROP ROLE "{role}"')


class Recorder(DestinationServices):
    """Services that remember the discards reported and know some source names."""

    def __init__(self, names: dict[str, str] | None = None) -> None:
        self.names = names or {}
        self.discards: list[DiscardReport] = []

    async def report_discards(self, context: DestinationContext, discards: Sequence[DiscardReport]) -> None:
        self.discards.extend(discards)

    async def source_name(self, source_id: str) -> str | None:
        return self.names.get(source_id)


def with_services(wh: Warehouse, services: DestinationServices, **overrides: Any) -> PostgresDestination:
    destination = wh.destination(**overrides)
    destination.context.services = services
    return destination


async def test_text_loads_exactly_and_nul_characters_are_dropped(wh: Warehouse) -> None:
    d = wh.destination()
    texts = {"empty": "", "quote": 'say "hi", ok', "lines": "a\nb\r\nc", "backslash": "\\.", "nul": "a\x00b"}
    await load(d, events.track("Noted", texts, message_id="n-1"))
    [row] = await wh.query("SELECT empty, quote, lines, backslash, nul FROM {s}.noted WHERE id = %s", "n-1")
    assert row == ("", 'say "hi", ok', "a\nb\r\nc", "\\.", "ab")


async def test_values_of_every_type_load_exactly_with_nulls_between(wh: Warehouse) -> None:
    d = wh.destination()
    values: list[dict[str, Any]] = [
        {"n": -(2**63), "x": -0.1, "ok": True, "at": "1970-01-01T00:00:00Z", "s": "é😀"},
        {"n": 2**63 - 1, "x": 1e308, "ok": False, "at": "1999-12-31T23:59:59.999999Z"},
        {"x": 5e-324, "at": "2000-01-01T00:00:00Z", "s": ""},
        {"n": 0, "ok": None, "at": "9999-12-31T23:59:59.5+02:00", "s": "a\x00b"},
    ]
    await load(d, *(events.track("Typed", v, message_id=f"t-{i}") for i, v in enumerate(values)))
    got = await wh.query("SELECT n, x, ok, to_char(at, 'YYYY-MM-DD HH24:MI:SS.US'), s FROM {s}.typed ORDER BY id")
    assert got == [
        (-(2**63), -0.1, True, "1970-01-01 00:00:00.000000", "é😀"),
        (2**63 - 1, 1e308, False, "1999-12-31 23:59:59.999999", None),
        (None, 5e-324, None, "2000-01-01 00:00:00.000000", ""),
        (0, None, None, "9999-12-31 21:59:59.500000", "ab"),
    ]


async def test_a_column_altered_by_hand_still_loads(wh: Warehouse) -> None:
    d = wh.destination()
    await load(d, events.track("Rated", {"stars": 3, "note": "ok", "due": "2026-01-02T03:04:05Z"}, message_id="a-1"))
    await wh.execute(
        "ALTER TABLE {s}.rated ALTER COLUMN stars TYPE integer, ALTER COLUMN note TYPE varchar(20), "
        "ALTER COLUMN due TYPE timestamp without time zone"
    )
    later = {"stars": 5, "note": "great", "due": "2026-02-03T04:05:06.5Z"}
    await load(wh.destination(), events.track("Rated", later, message_id="a-2"))
    await load(d, events.track("Rated", {"stars": 1, "note": "meh"}, message_id="a-3"))
    assert await wh.query("SELECT id, stars, note, to_char(due, 'MM-DD HH24:MI:SS.MS') FROM {s}.rated ORDER BY id") == [
        ("a-1", 3, "ok", "01-02 03:04:05.000"),
        ("a-2", 5, "great", "02-03 04:05:06.500"),
        ("a-3", 1, "meh", None),
    ]


async def test_discards_are_reported_with_their_event(wh: Warehouse) -> None:
    services = Recorder()
    d = with_services(wh, services)
    await load(d, events.track("Signed Up", {"paid": True}, message_id="r-1"))
    await load(d, events.track("Signed Up", {"paid": "yes"}, message_id="r-2"))
    assert [(r.message_id, r.schema, r.table, r.column, r.reason) for r in services.discards] == [
        ("r-2", wh.schema, "signed_up", "paid", "not_boolean")
    ]


async def test_one_event_postgres_refuses_fails_alone_and_the_rest_loads(wh: Warehouse) -> None:
    d = wh.destination()
    batch = [events.track("Clicked", {"n": i}, message_id=f"k-{i}") for i in range(7)]
    batch[2] = events.track("Clicked", message_id="k-" + secrets.token_urlsafe(6000))  # over the index entry limit
    batch[5] = events.track("Clicked", {"label": "\ud800"}, message_id="k-5")  # not UTF-8 at all
    outcomes = await d.deliver(deliveries(*batch))
    assert [o.kind for o in outcomes] == [
        "delivered",
        "delivered",
        "failed",
        "delivered",
        "delivered",
        "failed",
        "delivered",
    ]
    assert outcomes[2].error.startswith("load_refused:") and "index row" in outcomes[2].error
    assert outcomes[5].error.startswith("load_refused:")
    loaded = await wh.query("SELECT id FROM {s}.clicked ORDER BY id")
    assert [r[0] for r in loaded] == ["k-0", "k-1", "k-3", "k-4", "k-6"]


async def test_schemas_are_named_after_their_sources(wh: Warehouse) -> None:
    d = with_services(wh, Recorder({"src_a": "Web Shop"}), schemas={"src_b": "Legacy App"})
    items = [
        events.delivery(events.track(message_id="s-1"), source_id="src_a"),
        events.delivery(events.track(message_id="s-2"), source_id="src_b"),
    ]
    assert {o.kind for o in await d.deliver(items)} == {"delivered"}
    found = await wh.query("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s ORDER BY 1", wh.prefix + "%")
    assert [r[0] for r in found] == [wh.prefix + "legacy_app", wh.prefix + "web_shop"]

"""The duckdb destination against a real DuckDB file: schema, golden queries, evolution, discards,
idempotence, deletion and the read-only SQL guard."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from eventyard.destinations.base import DeleteSubject, DestinationContext, DestinationServices, DiscardReport
from eventyard.destinations.duckdb import DuckDBDestination, DuckDBSettings
from eventyard.testing import events
from eventyard.warehouse import ReadOnlyViolation

SOURCE = "src_web"


@pytest.fixture
async def wh(tmp_path: Path) -> AsyncIterator[DuckDBDestination]:
    context = DestinationContext("dst_wh", "warehouse", tmp_path, clock=lambda: 1_800_000_000.0)
    destination = DuckDBDestination(DuckDBSettings(schemas={SOURCE: "Web Site"}), context)
    await destination.start()
    try:
        yield destination
    finally:
        await destination.close()


async def load(wh: DuckDBDestination, *evts: dict[str, Any]) -> None:
    outcomes = await wh.deliver([events.delivery(e, source_id=SOURCE) for e in evts])
    assert [o.kind for o in outcomes] == ["delivered"] * len(evts), outcomes


async def rows(wh: DuckDBDestination, sql: str) -> list[list[Any]]:
    return (await wh.query(sql, 10_000)).rows


async def columns(wh: DuckDBDestination, table: str) -> dict[str, str]:
    return next(t.columns for t in await wh.describe() if t.table == table)


STANDARD = {"id", "anonymous_id", "user_id", "received_at", "sent_at", "original_timestamp", "timestamp", "uuid_ts"}


async def test_segment_schema_for_every_call_type(wh: DuckDBDestination) -> None:
    await load(wh, *(events.of_type(kind, i) for i, kind in enumerate(events.TYPES)))
    described = {t.table: t for t in await wh.describe()}
    assert {t.schema for t in described.values()} == {"web_site"}
    assert set(described) >= {"tracks", "identifies", "users", "pages", "screens", "groups", "aliases"}
    for table in ("tracks", "identifies", "pages", "screens", "groups", "aliases"):
        cols = described[table].columns
        assert STANDARD - {"anonymous_id"} <= set(cols), table  # a column exists once a value arrived
        assert cols["received_at"] == "TIMESTAMP" and cols["id"] == "VARCHAR"
        assert "context_library_name" in cols
    assert {"event", "event_text"} <= set(described["tracks"].columns)
    assert "group_id" in described["groups"].columns and "previous_id" in described["aliases"].columns
    assert set(described["users"].columns) >= {"id", "received_at", "uuid_ts"}
    assert "anonymous_id" not in described["users"].columns
    [[event, slug_rows]] = await rows(
        wh, "SELECT event, (SELECT count(*) FROM web_site.order_completed) FROM web_site.tracks"
    )
    assert event == "order_completed" and slug_rows == 1


async def test_golden_queries(wh: DuckDBDestination) -> None:
    day = events.BASE_TIME
    batch = [
        events.track("Product Viewed", {"sku": "A"}, message_id="v1", user_id="u1", at=day),
        events.track("Product Viewed", {"sku": "B"}, message_id="v2", user_id="u2", at=day),
        events.track("Product Viewed", {"sku": "A"}, message_id="v3", user_id="u3", at=day + timedelta(days=1)),
        events.track("Order Completed", {"revenue": 10}, message_id="o1", user_id="u1", at=day + timedelta(hours=1)),
        events.identify({"plan": "free", "email": "u1@example.com"}, message_id="i1", user_id="u1", at=day),
        events.identify({"plan": "pro"}, message_id="i2", user_id="u1", at=day + timedelta(days=2)),
    ]
    await load(wh, *batch)
    per_day = await rows(
        wh,
        "SELECT date_trunc('day', timestamp)::DATE::VARCHAR AS day, event, count(*) FROM web_site.tracks"
        " GROUP BY ALL ORDER BY day, event",
    )
    assert per_day == [
        ["2026-11-29", "order_completed", 1],
        ["2026-11-29", "product_viewed", 2],
        ["2026-11-30", "product_viewed", 1],
    ]
    assert await rows(wh, "SELECT id, plan, email FROM web_site.users") == [["u1", "pro", "u1@example.com"]]
    funnel = await rows(
        wh,
        "SELECT count(DISTINCT v.user_id), count(DISTINCT o.user_id) FROM web_site.product_viewed v"
        " LEFT JOIN web_site.order_completed o ON o.user_id = v.user_id AND o.timestamp > v.timestamp",
    )
    assert funnel == [[3, 1]]


async def test_name_is_a_trait_of_users_but_a_column_of_pages(wh: DuckDBDestination) -> None:
    await load(wh, events.identify({"name": "Ada"}, message_id="n1"), events.page(message_id="n2"))
    assert await rows(wh, "SELECT name FROM web_site.users") == [["Ada"]]
    assert await rows(wh, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'discards'") == [[0]]


async def test_an_older_identify_does_not_overwrite_newer_traits(wh: DuckDBDestination) -> None:
    later = events.BASE_TIME + timedelta(days=1)
    await load(wh, events.identify({"plan": "pro"}, message_id="new", at=later))
    await load(wh, events.identify({"plan": "free", "age": 40}, message_id="old"))
    assert await rows(wh, "SELECT plan, age FROM web_site.users") == [["pro", 40]]


async def test_types_widen_integer_to_float_to_text(wh: DuckDBDestination) -> None:
    await load(wh, events.track("Scored", {"score": 1}, message_id="s1"))
    assert (await columns(wh, "scored"))["score"] == "BIGINT"
    await load(wh, events.track("Scored", {"score": 2.5}, message_id="s2"))
    assert (await columns(wh, "scored"))["score"] == "DOUBLE"
    await load(wh, events.track("Scored", {"score": "high"}, message_id="s3"))
    assert (await columns(wh, "scored"))["score"] == "VARCHAR"
    assert await rows(wh, "SELECT id, score FROM web_site.scored ORDER BY id") == [
        ["s1", "1.0"],
        ["s2", "2.5"],
        ["s3", "high"],
    ]
    assert await rows(wh, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'discards'") == [[0]]


async def test_values_that_do_not_fit_go_to_discards(wh: DuckDBDestination) -> None:
    await load(wh, events.track("Trial Started", {"ends_at": "2026-12-29T00:00:00Z", "paid": False}, message_id="t1"))
    await load(wh, events.track("Trial Started", {"ends_at": ["never"], "paid": "no"}, message_id="t2"))
    cols = await columns(wh, "trial_started")
    assert cols["ends_at"] == "TIMESTAMP" and cols["paid"] == "BOOLEAN"
    assert await rows(wh, "SELECT id, ends_at IS NULL, paid IS NULL FROM web_site.trial_started ORDER BY id") == [
        ["t1", False, False],
        ["t2", True, True],
    ]
    assert await rows(
        wh, "SELECT table_name, column_name, row_id, column_value, reason FROM web_site.discards ORDER BY column_name"
    ) == [
        ["trial_started", "ends_at", "t2", '["never"]', "not_timestamp"],
        ["trial_started", "paid", "t2", "no", "not_boolean"],
    ]


async def test_replaying_a_batch_loads_nothing_twice(wh: DuckDBDestination) -> None:
    batch = [*events.sample(12), events.track("Trial Started", {"paid": "no"}, message_id="d1")]
    await load(wh, events.track("Trial Started", {"paid": True}, message_id="d0"))
    await load(wh, *batch)
    tables = sorted(t.table for t in await wh.describe())
    count = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM web_site.{t}" for t in tables)
    before = await rows(wh, count)
    assert ["users", 2] in before
    await load(wh, *batch)
    await load(wh, *batch[:5], *batch)  # duplicates inside one batch too
    assert await rows(wh, count) == before
    assert await rows(wh, "SELECT count(*) FROM web_site.discards") == [[1]]


async def test_delete_user_removes_their_rows_everywhere(wh: DuckDBDestination) -> None:
    await load(
        wh,
        events.track("Order Completed", message_id="a1", user_id="gone"),
        events.identify({"email": "gone@example.com"}, message_id="a2", user_id="gone"),
        events.page(message_id="a3", user_id="gone"),
        events.track("Trial Started", {"paid": True}, message_id="a4", user_id="gone"),
        events.track("Order Completed", message_id="b1", user_id="stays"),
    )
    await load(wh, events.track("Trial Started", {"paid": "x"}, message_id="a5", user_id="gone"))
    assert await rows(wh, "SELECT row_id FROM web_site.discards") == [["a5"]]
    outcome = await wh.delete_user(DeleteSubject("gone"))
    assert outcome.kind == "delivered"
    for table in ("tracks", "order_completed", "identifies", "pages", "trial_started"):
        assert await rows(wh, f"SELECT count(*) FROM web_site.{table} WHERE user_id = 'gone'") == [[0]], table
    assert await rows(wh, "SELECT count(*) FROM web_site.users WHERE id = 'gone'") == [[0]]
    assert await rows(wh, "SELECT count(*) FROM web_site.discards") == [[0]]
    assert await rows(wh, "SELECT user_id FROM web_site.tracks") == [["stays"]]


async def test_delete_user_reaches_every_anonymous_id_even_in_tables_without_user_ids(wh: DuckDBDestination) -> None:
    await load(
        wh,
        events.page(message_id="p1", user_id=None, anonymous_id="dev-1"),  # pages gets no user_id column
        events.page(message_id="p2", user_id=None, anonymous_id="dev-2"),
        events.page(message_id="p3", user_id=None, anonymous_id="dev-other"),
        events.track("Signed Up", message_id="t1", user_id="ana", anonymous_id="dev-3"),
    )
    subject = DeleteSubject("ana", {"anonymousId": "dev-1", "anonymousId.2": "dev-2", "email": "a@b.c"})
    assert (await wh.delete_user(subject)).kind == "delivered"
    assert await rows(wh, "SELECT anonymous_id FROM web_site.pages") == [["dev-other"]]
    assert await rows(wh, "SELECT count(*) FROM web_site.tracks") == [[0]]
    assert wh.deleted["rows"] >= 4  # pages, tracks, signed_up and the users row


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO web_site.tracks (id) VALUES ('x')",
        "ATTACH 'other.duckdb'",
        "COPY web_site.tracks TO 'out.csv'",
        "PRAGMA show_tables",
        "SELECT 1; DELETE FROM web_site.tracks",
        "SET memory_limit = '1GB'",
        "EXPLAIN ANALYZE DELETE FROM web_site.tracks",
        "CALL pragma_version()",
    ],
)
async def test_sql_guard_refuses_everything_but_one_read(wh: DuckDBDestination, sql: str) -> None:
    await load(wh, events.track())
    with pytest.raises(ReadOnlyViolation):
        await wh.query(sql, 10)
    assert await rows(wh, "SELECT count(*) FROM web_site.tracks") == [[1]]


async def test_reads_cannot_touch_files_and_results_are_capped(wh: DuckDBDestination, tmp_path: Path) -> None:
    (tmp_path / "secret.csv").write_text("a\n1\n")
    with pytest.raises(Exception, match="disabled by configuration"):
        await wh.query(f"SELECT * FROM read_csv('{tmp_path / 'secret.csv'}')", 10)
    result = await wh.query("SELECT * FROM range(25)", 10)
    assert len(result.rows) == 10 and result.truncated and result.columns == ["range"]


class Recorder(DestinationServices):
    """Services that remember what a destination reported and know a few source names."""

    def __init__(self, names: dict[str, str] | None = None) -> None:
        self.names = names or {}
        self.discards: list[DiscardReport] = []
        self.lookups: list[str] = []

    async def report_discards(self, context: DestinationContext, discards: Sequence[DiscardReport]) -> None:
        self.discards.extend(discards)

    async def source_name(self, source_id: str) -> str | None:
        self.lookups.append(source_id)
        return self.names.get(source_id)


def destination(tmp_path: Path, services: DestinationServices, **settings: Any) -> DuckDBDestination:
    context = DestinationContext("dst_wh", "warehouse", tmp_path, clock=lambda: 1_800_000_000.0, services=services)
    return DuckDBDestination(DuckDBSettings(**settings), context)


async def test_discards_are_reported_with_their_event_and_reason(tmp_path: Path) -> None:
    services = Recorder()
    wh = destination(tmp_path, services, schemas={SOURCE: "web"})
    try:
        await wh.deliver([events.delivery(events.track("Paid", {"paid": True}, message_id="p1"), source_id=SOURCE)])
        bad = events.track("Paid", {"paid": "no", "id": "mine"}, message_id="p2")
        outcomes = await wh.deliver([events.delivery(bad, source_id=SOURCE)])
        assert [o.kind for o in outcomes] == ["delivered"]
    finally:
        await wh.close()
    got = {(d.message_id, d.source_id, d.schema, d.table, d.column, d.reason) for d in services.discards}
    assert got == {
        ("p2", SOURCE, "web", "paid", "paid", "not_boolean"),
        ("p2", SOURCE, "web", "paid", "id", "reserved_column"),
    }


async def test_users_discards_are_told_to_the_newest_identify(tmp_path: Path) -> None:
    services = Recorder()
    wh = destination(tmp_path, services)
    later = events.BASE_TIME + timedelta(hours=1)
    try:
        await wh.deliver([events.delivery(events.identify({"vip": True}, message_id="i0"), source_id=SOURCE)])
        batch = [
            events.identify({"vip": "maybe"}, message_id="i1"),
            events.identify({"vip": "sure"}, message_id="i2", at=later),
        ]
        await wh.deliver([events.delivery(e, source_id=SOURCE) for e in batch])
    finally:
        await wh.close()
    users = [d for d in services.discards if d.table == "users"]
    assert [(d.message_id, d.column, d.reason) for d in users] == [("i2", "vip", "not_boolean")]


async def test_one_event_the_database_cannot_take_fails_alone(tmp_path: Path) -> None:
    wh = destination(tmp_path, Recorder(), schemas={SOURCE: "web"})
    batch = [events.track("Clicked", {"n": i}, message_id=f"c{i}") for i in range(9)]
    batch[5] = events.track("Clicked", {"label": "bad \ud800 text"}, message_id="c5")  # cannot be UTF-8
    try:
        outcomes = await wh.deliver([events.delivery(e, source_id=SOURCE) for e in batch])
        assert [o.kind for o in outcomes] == ["delivered"] * 5 + ["failed"] + ["delivered"] * 3
        assert outcomes[5].error.startswith("load_refused:")
        loaded = await wh.query("SELECT id FROM web.clicked ORDER BY id", 100)
        assert [r[0] for r in loaded.rows] == [f"c{i}" for i in range(9) if i != 5]
        again = await wh.deliver([events.delivery(e, source_id=SOURCE) for e in batch])  # a retry: no duplicates
        assert [o.kind for o in again].count("delivered") == 8
        assert (await wh.query("SELECT count(*) FROM web.tracks", 1)).rows == [[8]]
    finally:
        await wh.close()


async def test_an_unknown_event_type_fails_with_a_reason_code(wh: DuckDBDestination) -> None:
    outcomes = await wh.deliver([events.delivery({"type": "telepathy", "messageId": "t1"}, source_id=SOURCE)])
    assert outcomes[0].kind == "failed" and outcomes[0].error.startswith("unsupported_event:")


async def test_schema_is_named_after_the_source(tmp_path: Path) -> None:
    services = Recorder({"src_1": "iOS App", "src_2": "Web Site", "src_3": "order"})
    wh = destination(tmp_path, services, schemas={"Web Site": "marketing_site"})
    try:
        items = [
            events.delivery(events.track(message_id="a"), source_id="src_1"),
            events.delivery(events.track(message_id="b"), source_id="src_2"),
            events.delivery(events.track(message_id="c"), source_id="src_3"),
            events.delivery(events.track(message_id="d"), source_id="src_unknown"),
            events.delivery(events.track(message_id="e"), source_id=""),
        ]
        assert {o.kind for o in await wh.deliver(items)} == {"delivered"}
        await wh.deliver([events.delivery(events.track(message_id="f"), source_id="src_1")])
        schemas = {t.schema for t in await wh.describe()}
    finally:
        await wh.close()
    assert schemas == {"i_os_app", "marketing_site", "_order", "src_unknown", "eventyard"}
    assert services.lookups.count("src_1") == 1  # a name once resolved is kept


async def test_a_failing_source_lookup_retries_the_batch(tmp_path: Path) -> None:
    class Broken(Recorder):
        async def source_name(self, source_id: str) -> str | None:
            raise OSError("state store unreachable")

    wh = destination(tmp_path, Broken())
    try:
        outcomes = await wh.deliver([events.delivery(events.track(), source_id="src_x")])
    finally:
        await wh.close()
    assert outcomes[0].kind == "retry" and outcomes[0].error.startswith("source_lookup:")

"""A normalized event as rows of Segment's warehouse schema."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from eventyard.testing import events
from eventyard.warehouse import (
    DUCKDB,
    EVENT_COLUMNS,
    STANDARD_TABLES,
    Flattened,
    column_name,
    flatten_event,
    flatten_object,
    table_name,
)
from eventyard.warehouse.flatten import RESERVED_COLUMNS

LOADED = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)


def flat(event: dict[str, object]) -> Flattened:
    return flatten_event(event, loaded_at=LOADED, dialect=DUCKDB)


def test_track_gives_a_tracks_row_and_an_event_table_row() -> None:
    out = flat(events.track("Order Completed", {"revenue": 42.5, "cart": {"itemCount": 2}, "tags": ["a", "b"]}))
    tracks, own = out.rows
    assert tracks.table == "tracks" and own.table == "order_completed"
    assert tracks.row["id"] == "track-000001"
    assert tracks.row["event"] == "order_completed" and tracks.row["event_text"] == "Order Completed"
    assert tracks.row["uuid_ts"] == LOADED
    assert tracks.row["context_library_name"] == "analytics-python"
    assert tracks.row["context_user_agent"].startswith("Mozilla")
    assert "revenue" not in tracks.row
    assert own.row["revenue"] == 42.5 and own.row["cart_item_count"] == 2 and own.row["tags"] == '["a","b"]'
    assert own.row["received_at"] == tracks.row["received_at"]
    assert out.discards == []


def test_identify_gives_identifies_and_a_users_upsert() -> None:
    out = flat(events.identify({"email": "ada@example.com", "plan": "pro"}))
    identifies, users = out.rows
    assert identifies.table == "identifies" and identifies.row["email"] == "ada@example.com"
    assert users.table == "users" and users.upsert
    assert users.row["id"] == "user-0001" and users.row["plan"] == "pro"
    assert "anonymous_id" not in users.row and "context_ip" not in users.row


def test_identify_without_user_id_has_no_users_row() -> None:
    assert [r.table for r in flat(events.identify(user_id=None)).rows] == ["identifies"]


def test_page_screen_group_alias() -> None:
    page = flat(events.page()).rows[0]
    assert page.table == "pages" and "name" in page.row
    assert flat(events.screen()).rows[0].table == "screens"
    group = flat(events.group()).rows[0]
    assert group.table == "groups" and group.row["group_id"]
    alias = flat(events.alias()).rows[0]
    assert alias.table == "aliases" and alias.row["previous_id"]


def test_reserved_and_colliding_names_are_discarded_with_a_reason() -> None:
    out = flat(events.track("Signed Up", {"id": "mine", "event": "x", "userName": "a", "user_name": "b", "!": 1}))
    own = out.rows[1].row
    assert own["id"] == "track-000001" and own["user_name"] == "a"
    reasons = {(d.column, d.reason) for d in out.discards}
    assert reasons == {
        ("id", "reserved_column"),
        ("event", "reserved_column"),
        ("user_name", "duplicate_column"),
        ("!", "empty_column_name"),
    }


def test_reserved_words_are_prefixed() -> None:
    own = flat(events.track("Ordered", {"order": 1, "select": True})).rows[1].row
    assert own["_order"] == 1 and own["_select"] is True


# -- the fast flattener against a plain rendering of the rules ----------------------------

KEYS = st.sampled_from(["a", "b", "userId", "user_id", "id", "name", "Event", "order", "x1", "!", "", "ctx"])
LEAVES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=3))
OBJECTS = st.recursive(
    st.dictionaries(KEYS, LEAVES, max_size=4),
    lambda inner: st.dictionaries(KEYS, st.one_of(LEAVES, inner, st.lists(LEAVES, max_size=2)), max_size=4),
    max_leaves=12,
)


def _leaves(obj: dict[str, object], prefix: str = "") -> tuple[dict[str, object], int]:
    """Every leaf by its raw ``_``-joined path, and how many there were (paths may repeat)."""
    out = flatten_object(obj, prefix)
    count = 0

    def walk(o: dict[str, object]) -> None:
        nonlocal count
        for v in o.values():
            if isinstance(v, dict):
                walk(v)
            elif v is not None:
                count += 1

    walk(obj)
    return out, count


def _reference(event: dict[str, object]) -> tuple[list[tuple[str, dict[str, object]]], set[tuple[str, str, str]]]:
    """The flattening rules written out plainly, one value at a time."""
    discards: set[tuple[str, str, str]] = set()
    kind = event["type"]
    reserved = set(RESERVED_COLUMNS) | {"track": {"event", "event_text"}, "page": {"name"}}.get(str(kind), set())

    def add(row: dict[str, object], obj: object, table: str, prefix: str, check_reserved: bool) -> None:
        if not isinstance(obj, dict):
            return
        for path, value in flatten_object(obj, prefix).items():
            column = column_name(path, DUCKDB)
            if not column:
                discards.add((table, path, "empty_column_name"))
            elif check_reserved and column in reserved:
                discards.add((table, column, "reserved_column"))
            elif column in row:
                discards.add((table, column, "duplicate_column"))
            else:
                row[column] = value

    def base(table: str) -> dict[str, object]:
        row: dict[str, object] = {c: event[k] for c, k in EVENT_COLUMNS if event.get(k) is not None}
        row["uuid_ts"] = LOADED
        add(row, event.get("context"), table, "context", False)
        return row

    if kind == "track":
        slug = table_name(str(event["event"]), DUCKDB, STANDARD_TABLES)
        tracks = {**base("tracks"), "event": slug, "event_text": event["event"]}
        own = dict(tracks)
        add(own, event.get("properties"), slug, "", True)
        return [("tracks", tracks), (slug, own)], discards
    row = base("pages")
    if event.get("name") is not None:
        row["name"] = event["name"]
    add(row, event.get("properties"), "pages", "", True)
    return [("pages", row)], discards


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(["track", "page"]),
    name=st.sampled_from(["Order Completed", "tracks", "Select", "!!"]),
    properties=OBJECTS,
    context=OBJECTS,
)
def test_fast_flattening_follows_the_rules(
    kind: str, name: str, properties: dict[str, object], context: dict[str, object]
) -> None:
    for obj in (properties, context):
        flat_paths, leaves = _leaves(obj)
        assume(len(flat_paths) == leaves)  # the plain rendering cannot tell two leaves of one path apart
    event: dict[str, object] = {
        "type": kind,
        "messageId": "m-1",
        "userId": "u-1",
        "receivedAt": "2026-11-29T03:00:00.000Z",
        "properties": properties,
        "context": context,
    }
    if kind == "track":
        event["event"] = name
    else:
        event["name"] = name
    expected_rows, expected_discards = _reference(event)
    got = flat(event)
    assert [(r.table, r.row) for r in got.rows] == expected_rows
    assert {(d.table, d.column, d.reason) for d in got.discards} == expected_discards


def test_two_leaves_with_the_same_path_keep_the_first_and_discard_the_second() -> None:
    out = flat(events.track("Noted", {"a_b": 1, "a": {"b": 2}}))
    assert out.rows[1].row["a_b"] == 1
    assert [(d.column, d.value, d.reason) for d in out.discards] == [("a_b", "2", "duplicate_column")]

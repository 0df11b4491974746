"""A normalized event as rows of Segment's warehouse schema."""

from __future__ import annotations

from datetime import UTC, datetime

from eventyard.testing import events
from eventyard.warehouse import DUCKDB, Flattened, flatten_event

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

"""``GraphTx.forget_profiles`` (regulations) on every identity store backend, PostgreSQL included."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from eventyard.state.identity_base import (
    DecisionRow,
    EventRow,
    GraphTx,
    IdentifierRow,
    IdentityStore,
    LinkRow,
    MergeRow,
    ProfileRow,
)
from eventyard.testing.identity import BACKENDS, open_store, postgres_available, postgres_database
from eventyard.testing.services import require_service

WS = "ws_forget"


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str | None]:
    if not postgres_available():
        yield None
        return
    with postgres_database() as dsn:
        yield dsn


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path, pg_dsn: str | None) -> AsyncIterator[IdentityStore]:
    if request.param == "postgres":
        require_service(pg_dsn is not None, "PostgreSQL at 127.0.0.1:5432")
    async with open_store(request.param, tmp_path, pg_dsn) as s:
        yield s


def _ident(key: str, pid: str) -> IdentifierRow:
    return IdentifierRow(WS, "users", key, pid, 10.0, "m-" + key, "src_1", pid, 100.0)


def _event(message_id: str, pid: str) -> EventRow:
    return EventRow(WS, "src_1", message_id, pid, 10.0, 11.0, "track", "Viewed", ["user_id:ana"], b"{}")


async def test_forget_profiles_deletes_every_row_of_the_profiles_and_nothing_else(store: IdentityStore) -> None:
    def write(tx: GraphTx) -> None:
        tx.insert_profiles(
            [
                ProfileRow("ana", WS, "users", 1.0, 1.0),
                ProfileRow("ana-old", WS, "users", 1.0, 1.0, merged_into="ana"),
                ProfileRow("bob", WS, "users", 1.0, 1.0),
                ProfileRow("acme", WS, "accounts", 1.0, 1.0),
            ]
        )
        tx.upsert_identifiers(
            [_ident("user_id:ana", "ana"), _ident("anonymous_id:a1", "ana"), _ident("user_id:bob", "bob")]
        )
        tx.save_traits([("ana", {"email": ["ana@example.com", 1.0, "src_1", "m1"]}, 2.0)])
        tx.add_sources([("ana", "src_1", 1.0), ("bob", "src_1", 1.0)])
        tx.insert_events([_event("m1", "ana"), _event("m2", "ana-old"), _event("m3", "bob")])
        tx.insert_merges(
            [
                MergeRow(
                    WS, "users", "ana", "ana-old", "m2", "src_1", "alias", "", {"anonymous_id:a1": "ana-old"}, 1.0, 2.0
                )
            ]
        )
        tx.note_decisions([DecisionRow(WS, "ana", "email:x", "blocked_value", "", "m1", "src_1", 1.0)])
        tx.upsert_links(
            [LinkRow(WS, "ana", "acme", 1.0, 1.0, "m1", "src_1"), LinkRow(WS, "bob", "acme", 1.0, 1.0, "m3", "src_1")]
        )

    await store.transact(write)
    members = await store.read(lambda tx: tx.members("ana"))
    removed = await store.transact(lambda tx: tx.forget_profiles(members))

    assert removed == {
        "events": 2,
        "identifiers": 2,
        "traits": 1,
        "sources": 1,
        "merges": 1,
        "decisions": 1,
        "links": 1,
        "profiles": 2,
    }

    def read(tx: GraphTx) -> tuple[object, ...]:
        return (
            sorted(tx.load_profiles(["ana", "ana-old", "bob", "acme"])),
            tx.lookup(WS, "users", ["user_id:ana", "anonymous_id:a1", "user_id:bob"]),
            [e.message_id for e in tx.events_of(["ana", "ana-old", "bob"])],
            [lk.user_profile for lk in tx.links_of(["acme"], accounts=True)],
            tx.merges_of(["ana", "ana-old"]),
            tx.load_traits(["ana"]),
        )

    assert await store.read(read) == (["acme", "bob"], {"user_id:bob": "bob"}, ["m3"], ["bob"], [], {})
    assert await store.transact(lambda tx: tx.forget_profiles([])) == {}

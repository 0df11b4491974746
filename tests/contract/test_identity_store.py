"""The identity store contract (``GraphTx`` primitives and transactions): every backend must
pass every test here. PostgreSQL runs against the real server, each test in its own schema."""

from __future__ import annotations

import asyncio
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
    Touch,
)
from eventyard.testing.identity import BACKENDS, open_store, postgres_available, postgres_database, twin
from eventyard.testing.services import require_service

WS = "ws_test"


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


def profile(pid: str, created: float = 1.0, **kw: object) -> ProfileRow:
    return ProfileRow(pid, WS, "users", created, created, **kw)  # type: ignore[arg-type]


def ident(key: str, pid: str, added: float = 10.0) -> IdentifierRow:
    return IdentifierRow(WS, "users", key, pid, added, "m-" + key, "src_1", pid, 100.0)


def event(message_id: str, pid: str, ts: float, name: str = "Viewed") -> EventRow:
    body = b'{"type":"track","event":"%s","messageId":"%s"}' % (name.encode(), message_id.encode())
    return EventRow(WS, "src_1", message_id, pid, ts, ts + 1, "track", name, ["anonymous_id:a"], body)


async def test_profiles_and_identifiers_round_trip(store: IdentityStore) -> None:
    def write(tx: GraphTx) -> None:
        tx.insert_profiles([profile("p1", traits={"name": ["Ana", 5.0, "src_1", "m1"]})])
        tx.upsert_identifiers([ident("user_id:u1", "p1"), ident("email:a@x.io", "p1")])

    await store.transact(write)

    def read(tx: GraphTx) -> tuple[object, ...]:
        return (
            tx.lookup(WS, "users", ["user_id:u1", "email:a@x.io", "user_id:nope"]),
            tx.lookup(WS, "accounts", ["user_id:u1"]),
            tx.lookup("other_ws", "users", ["user_id:u1"]),
            tx.load_profiles(["p1", "missing"]),
            tx.load_profiles(["p1"], traits=True)["p1"].traits,
            [i.key for i in tx.load_identifiers(["p1"])],
        )

    found, accounts, other, plain, traits, keys = await store.read(read)
    assert await store.read(lambda tx: tx.profile_heads(["p1", "missing"])) == {"p1": (1.0, 0)}
    assert sorted(await store.read(lambda tx: tx.identifier_times(["p1"]))) == [
        ("p1", "email:a@x.io", 10.0),
        ("p1", "user_id:u1", 10.0),
    ]
    assert found == {"user_id:u1": "p1", "email:a@x.io": "p1"}
    assert accounts == {} and other == {}
    assert list(plain) == ["p1"] and plain["p1"].traits == {}  # type: ignore[index]
    assert traits == {"name": ["Ana", 5.0, "src_1", "m1"]}
    assert keys == ["email:a@x.io", "user_id:u1"]


async def test_metadata_sources_and_traits_are_written_without_reading(store: IdentityStore) -> None:
    await store.transact(lambda tx: tx.insert_profiles([profile("p1"), profile("p2", merged_into="p1")]))

    def touch(first: float, last: float, message: str) -> Touch:
        return Touch("p1", first, message, "src_1", last, message, "src_2", 50.0)

    await store.transact(lambda tx: tx.touch_profiles([touch(10.0, 20.0, "a")]))
    await store.transact(lambda tx: tx.touch_profiles([touch(15.0, 18.0, "b")]))  # inside: changes nothing
    await store.transact(lambda tx: tx.touch_profiles([touch(5.0, 25.0, "c")]))
    row = (await store.read(lambda tx: tx.load_profiles(["p1"])))["p1"]
    assert (row.first_seen, row.first_message_id, row.last_seen, row.last_message_id) == (5.0, "c", 25.0, "c")
    assert (row.first_source_id, row.last_source_id, row.updated_at) == ("src_1", "src_2", 50.0)
    await store.transact(lambda tx: tx.add_sources([("p1", "src_b", 3.0), ("p1", "src_a", 1.0), ("p2", "src_c", 2.0)]))
    await store.transact(lambda tx: tx.add_sources([("p1", "src_a", 9.0)]))
    assert await store.read(lambda tx: tx.sources_of(["p1", "p2"])) == {
        "p1": [("src_a", 1.0), ("src_b", 3.0)],
        "p2": [("src_c", 2.0)],
    }
    await store.transact(lambda tx: tx.save_traits([("p1", {"plan": ["pro", 4.0, "src_a", "m"]}, 60.0)]))
    assert await store.read(lambda tx: tx.load_traits(["p1", "nope"])) == {"p1": {"plan": ["pro", 4.0, "src_a", "m"]}}
    assert await store.read(lambda tx: tx.merged_of(["p1", "p2", "nope"])) == {"p2": "p1"}


async def test_upsert_changes_only_the_profile_of_a_known_key(store: IdentityStore) -> None:
    await store.transact(lambda tx: tx.insert_profiles([profile("p1"), profile("p2")]))
    await store.transact(lambda tx: tx.upsert_identifiers([ident("user_id:u1", "p1", added=10.0)]))
    await store.transact(lambda tx: tx.upsert_identifiers([ident("user_id:u1", "p2", added=99.0)]))
    rows = await store.read(lambda tx: tx.load_identifiers(["p1", "p2"]))
    assert [(r.key, r.profile_id, r.added_at, r.origin_profile) for r in rows] == [("user_id:u1", "p2", 10.0, "p1")]


async def test_long_key_lists_are_looked_up_whole(store: IdentityStore) -> None:
    keys = [f"anonymous_id:a{i}" for i in range(4500)]

    def write(tx: GraphTx) -> None:
        tx.insert_profiles([profile("p1")])
        tx.upsert_identifiers([ident(k, "p1") for k in keys])

    await store.transact(write)
    found = await store.read(lambda tx: tx.lookup(WS, "users", keys))
    assert len(found) == 4500


async def test_merging_moves_identifiers_and_shortens_chains(store: IdentityStore) -> None:
    def write(tx: GraphTx) -> None:
        tx.insert_profiles([profile("old"), profile("mid", merged_into=None), profile("new")])
        tx.upsert_identifiers([ident("anonymous_id:a", "mid"), ident("user_id:u", "new")])
        tx.save_profiles([profile("old", merged_into="mid")], traits=False)

    await store.transact(write)

    def merge(tx: GraphTx) -> None:
        tx.repoint_identifiers(WS, [("mid", "new")])
        tx.redirect_merged([("mid", "new")])
        tx.save_profiles([profile("mid", merged_into="new")], traits=False)

    await store.transact(merge)

    def read(tx: GraphTx) -> tuple[object, ...]:
        return (
            tx.lookup(WS, "users", ["anonymous_id:a"]),
            tx.members("new"),
            tx.load_profiles(["old"])["old"].merged_into,
        )

    assert await store.read(read) == ({"anonymous_id:a": "new"}, ["new", "mid", "old"], "new")


async def test_merges_are_listed_found_and_undone(store: IdentityStore) -> None:
    rows = [
        MergeRow(WS, "users", "p1", "p2", "m1", "src_1", "shared_identifier", "why", {"user_id:u": "p1"}, 5.0, 6.0),
        MergeRow(WS, "users", "p1", "p3", "m2", "src_1", "alias", "why", {"anonymous_id:a": "p3"}, 7.0, 8.0),
    ]
    await store.transact(lambda tx: tx.insert_merges(rows))
    merges = await store.read(lambda tx: tx.merges_of(["p1"]))
    assert [(m.from_profile, m.rule, m.identifiers) for m in merges] == [
        ("p2", "shared_identifier", {"user_id:u": "p1"}),
        ("p3", "alias", {"anonymous_id:a": "p3"}),
    ]
    first = merges[0].id
    assert first is not None
    assert [m.id for m in await store.read(lambda tx: tx.merges_of(["p3"]))] == [merges[1].id]
    await store.transact(lambda tx: tx.undo_merge(first, 9.0, "split by an operator"))
    again = await store.read(lambda tx: tx.merge_by_id(WS, first))
    assert again is not None and (again.undone_at, again.undone_reason) == (9.0, "split by an operator")
    assert await store.read(lambda tx: tx.merge_by_id("other", first)) is None


async def test_decisions_are_counted_per_profile_identifier_and_rule(store: IdentityStore) -> None:
    def note(message: str, at: float) -> list[DecisionRow]:
        return [
            DecisionRow(WS, "p1", "anonymous_id:t", "limit:user_id", "detail", message, "src_1", at),
            DecisionRow(WS, "", "user_id:null", "blocked_value", "blocked", message, "src_1", at),
        ]

    await store.transact(lambda tx: tx.note_decisions(note("m1", 1.0)))
    await store.transact(lambda tx: tx.note_decisions(note("m2", 2.0)))
    rows = await store.read(lambda tx: tx.decisions_of(["p1", ""]))
    assert sorted((d.profile_id, d.rule, d.count, d.message_id, d.first_at, d.at) for d in rows) == [
        ("", "blocked_value", 2, "m2", 1.0, 2.0),
        ("p1", "limit:user_id", 2, "m2", 1.0, 2.0),
    ]


async def test_events_are_stored_once_and_paged_in_time_order(store: IdentityStore) -> None:
    rows = [event(f"m{i}", "p1", float(10 + i % 3)) for i in range(6)]
    await store.transact(lambda tx: tx.insert_events(rows))
    await store.transact(lambda tx: tx.insert_events(rows[:2]))  # a retried batch changes nothing
    newest = await store.read(lambda tx: tx.events_of(["p1"], limit=10))
    assert [(e.ts, e.message_id) for e in newest] == [
        (12.0, "m5"),
        (12.0, "m2"),
        (11.0, "m4"),
        (11.0, "m1"),
        (10.0, "m3"),
        (10.0, "m0"),
    ]
    assert newest[0].body.startswith(b'{"type":"track"') and newest[0].ids == ["anonymous_id:a"]
    page = await store.read(lambda tx: tx.events_of(["p1"], limit=2, before=(11.0, "m4")))
    assert [e.message_id for e in page] == ["m1", "m3"]
    oldest = await store.read(lambda tx: tx.events_of(["p1"], limit=3, after=(10.0, "m3"), descending=False))
    assert [e.message_id for e in oldest] == ["m1", "m4", "m2"]
    window = await store.read(lambda tx: tx.events_of(["p1"], start=11.0, end=12.0, with_body=False))
    assert [e.message_id for e in window] == ["m4", "m1"] and window[0].body == b""
    await store.transact(lambda tx: tx.move_events(WS, [("src_1", "m0"), ("src_1", "m1")], "p2"))
    await store.transact(lambda tx: tx.delete_events(WS, [("src_1", "m5")]))
    assert [e.message_id for e in await store.read(lambda tx: tx.events_of(["p2"]))] == ["m1", "m0"]
    assert len(await store.read(lambda tx: tx.events_of(["p1", "p2"]))) == 5


async def test_links_keep_the_widest_time_range(store: IdentityStore) -> None:
    await store.transact(lambda tx: tx.upsert_links([LinkRow(WS, "u1", "a1", 5.0, 5.0, "m1", "src_1")]))
    await store.transact(
        lambda tx: tx.upsert_links(
            [LinkRow(WS, "u1", "a1", 3.0, 4.0, "m2", "src_1"), LinkRow(WS, "u2", "a1", 9.0, 9.0, "m3", "src_1")]
        )
    )
    users = await store.read(lambda tx: tx.links_of(["u1"], accounts=False))
    assert [(lk.account_profile, lk.first_at, lk.last_at, lk.message_id) for lk in users] == [("a1", 3.0, 5.0, "m1")]
    accounts = await store.read(lambda tx: tx.links_of(["a1"], accounts=True))
    assert [lk.user_profile for lk in accounts] == ["u1", "u2"]
    await store.transact(lambda tx: tx.delete_links(["u1"]))
    assert [lk.user_profile for lk in await store.read(lambda tx: tx.links_of(["a1"], accounts=True))] == ["u2"]


async def test_rules_purge_counts_and_identifier_pages(store: IdentityStore) -> None:
    assert await store.read(lambda tx: tx.get_rules(WS)) is None
    await store.transact(lambda tx: tx.set_rules(WS, b'{"max_merges": 3}', 1.0))
    await store.transact(lambda tx: tx.set_rules(WS, b'{"max_merges": 4}', 2.0))
    assert await store.read(lambda tx: tx.get_rules(WS)) == b'{"max_merges": 4}'

    def fill(tx: GraphTx) -> None:
        tx.insert_profiles([profile("p1")])
        tx.upsert_identifiers([ident(f"anonymous_id:a{i}", "p1") for i in range(5)] + [ident("user_id:u", "p1")])
        tx.insert_events([event(f"m{i}", "p1", float(i)) for i in range(10)])
        tx.note_decisions([DecisionRow(WS, "p1", "user_id:x", "limit:user_id", "d", "m", "s", 0.5)])

    await store.transact(fill)
    page = await store.read(lambda tx: tx.identifier_page("p1", "anonymous_id:a1", 2, None))
    assert [i.key for i in page] == ["anonymous_id:a2", "anonymous_id:a3"]
    typed = await store.read(lambda tx: tx.identifier_page("p1", None, 10, ["user_id"]))
    assert [i.key for i in typed] == ["user_id:u"]
    assert await store.read(lambda tx: tx.counts(WS)) == {"profiles": 1, "identifiers": 6, "merges": 0, "events": 10}
    # events were received at ts + 1: those received before 5.5 (m0..m4) go, and the old decision
    assert await store.transact(lambda tx: tx.purge(5.5, 3)) == 4
    assert await store.transact(lambda tx: tx.purge(5.5, 3)) == 2
    assert await store.transact(lambda tx: tx.purge(5.5, 3)) == 0
    assert (await store.read(lambda tx: tx.counts(WS)))["events"] == 5


async def test_commits_that_are_not_flushed_at_once_are_still_committed(store: IdentityStore) -> None:
    await store.transact(lambda tx: tx.insert_profiles([profile("p1")]), durable=False)
    await store.transact(lambda tx: tx.upsert_identifiers([ident("user_id:u1", "p1")]))
    assert await store.read(lambda tx: tx.lookup(WS, "users", ["user_id:u1"])) == {"user_id:u1": "p1"}
    assert list(await store.read(lambda tx: tx.load_profiles(["p1"]))) == ["p1"]


async def test_a_failed_transaction_leaves_nothing(store: IdentityStore) -> None:
    def half(tx: GraphTx) -> None:
        tx.insert_profiles([profile("p1")])
        tx.upsert_identifiers([ident("user_id:u1", "p1")])
        raise RuntimeError("stop here")

    with pytest.raises(RuntimeError):
        await store.transact(half)
    assert await store.read(lambda tx: tx.lookup(WS, "users", ["user_id:u1"])) == {}
    assert await store.read(lambda tx: tx.load_profiles(["p1"])) == {}


async def test_profile_of_reads_a_profile_with_its_traits_by_identifier(store: IdentityStore) -> None:
    def write(tx: GraphTx) -> None:
        tx.insert_profiles([profile("p1", traits={"plan": ["pro", 5.0, "s", "m"]}), profile("p2")])
        tx.upsert_identifiers([ident("user_id:u1", "p1"), ident("user_id:u2", "p2")])

    await store.transact(write)

    def q(tx: GraphTx) -> tuple[object, ...]:
        one, two = tx.profile_of(WS, "users", "user_id:u1"), tx.profile_of(WS, "users", "user_id:u2")
        assert one is not None and two is not None
        return (
            one == tx.load_profiles(["p1"], traits=True)["p1"],
            one.traits,
            two.traits,
            tx.profile_of(WS, "accounts", "user_id:u1"),
            tx.profile_of("other_ws", "users", "user_id:u1"),
            tx.profile_of(WS, "users", "user_id:nope"),
        )

    assert await store.read(q) == (True, {"plan": ["pro", 5.0, "s", "m"]}, {}, None, None, None)


async def test_read_now_sees_what_read_sees(store: IdentityStore) -> None:
    """``read_now`` (the Profile API's short reads) answers from the same committed state."""
    assert await store.read_now(lambda tx: tx.lookup(WS, "users", ["user_id:u1"])) == {}
    await store.transact(lambda tx: tx.insert_profiles([profile("p1", traits={"plan": ["pro", 5.0, "s", "m"]})]))
    await store.transact(lambda tx: tx.upsert_identifiers([ident("user_id:u1", "p1")]))

    def q(tx: GraphTx) -> tuple[object, ...]:
        return tx.lookup(WS, "users", ["user_id:u1"]), tx.load_profiles(["p1"], traits=True)["p1"].traits

    assert await store.read_now(q) == await store.read(q) == ({"user_id:u1": "p1"}, {"plan": ["pro", 5.0, "s", "m"]})

    def fails(tx: GraphTx) -> None:
        raise LookupError("inside the read")

    with pytest.raises(LookupError):
        await store.read_now(fails)
    assert await store.read_now(q) == await store.read(q)


async def test_two_stores_on_one_database_serialize_read_modify_write(store: IdentityStore) -> None:
    """Two workers increment one counter (the profile's merge count) many times at once."""
    other = twin(store)
    await other.start()
    try:
        await store.transact(lambda tx: tx.insert_profiles([profile("p1")]))

        def bump(tx: GraphTx) -> None:
            row = tx.load_profiles(["p1"])["p1"]
            row.merges += 1
            tx.save_profiles([row], traits=False)

        await asyncio.gather(*(s.transact(bump) for _ in range(20) for s in (store, other)))
        assert (await store.read(lambda tx: tx.load_profiles(["p1"])))["p1"].merges == 40
    finally:
        await other.close()


async def test_account_events_are_listed_through_the_user_history(store: IdentityStore) -> None:
    def write(tx: GraphTx) -> None:
        tx.insert_events([event("m1", "p1", 10.0), event("m2", "p2", 20.0), event("m3", "p1", 30.0)])
        rows = [(WS, "acc1", "src_1", "m1", 10.0, 11.0), (WS, "acc1", "src_1", "m2", 20.0, 21.0)]
        tx.insert_account_events([*rows, (WS, "acc2", "src_1", "m3", 30.0, 31.0)])
        tx.insert_account_events(rows)  # again: nothing changes

    await store.transact(write)

    def listed(tx: GraphTx) -> list[tuple[str, str, bool]]:
        found = tx.events_of(["acc1"], accounts=True)
        return [(e.message_id, e.profile_id, bool(e.body)) for e in found]

    assert await store.read(listed) == [("m2", "acc1", True), ("m1", "acc1", True)]
    after = await store.read(lambda tx: tx.events_of(["acc1"], accounts=True, descending=False, after=(10.0, "m1")))
    assert [e.message_id for e in after] == ["m2"]
    assert await store.read(lambda tx: tx.events_of(["acc1"])) == []  # no user profile is called acc1
    assert await store.transact(lambda tx: tx.purge(20.5, 100)) == 2  # m1: its event and its account row
    assert [e.message_id for e in await store.read(lambda tx: tx.events_of(["acc1"], accounts=True))] == ["m2"]


async def test_change_records_are_numbered_read_per_workspace_and_purged(store: IdentityStore) -> None:
    assert await store.read(lambda tx: (tx.last_change(), tx.changes_purged_upto())) == (0, 0)
    await store.transact(lambda tx: tx.add_change(WS, 10.0, b'{"a":1}'))
    await store.transact(lambda tx: tx.add_change("other", 11.0, b'{"b":2}'))
    await store.transact(lambda tx: tx.add_change(WS, 12.0, b'{"c":3}'))
    found = await store.read(lambda tx: tx.changes_after(WS, 0, 10))
    assert [body for _, body in found] == [b'{"a":1}', b'{"c":3}']
    first, third = found[0][0], found[1][0]
    assert first < third and await store.read(lambda tx: tx.changes_after(WS, first, 10)) == [found[1]]
    assert await store.read(lambda tx: tx.changes_after(WS, first, 0)) == []
    assert await store.transact(lambda tx: tx.purge_changes(11.5)) == 2
    assert await store.read(lambda tx: (tx.changes_purged_upto(), tx.last_change())) == (first + 1, third)
    assert await store.read(lambda tx: tx.changes_after(WS, 0, 10)) == [found[1]]
    await store.transact(lambda tx: tx.purge_changes(100.0))
    assert await store.read(lambda tx: tx.last_change()) == third  # numbers never go back
    await store.transact(lambda tx: tx.add_change(WS, 13.0, b"{}"))
    assert (await store.read(lambda tx: tx.changes_after(WS, third, 10)))[0][0] > third


async def test_change_records_are_kept_until_every_active_follower_has_them(store: IdentityStore) -> None:
    for at in (10.0, 20.0, 30.0, 40.0):
        await store.transact(lambda tx, at=at: tx.add_change(WS, at, b"{}"))
    seqs = [seq for seq, _ in await store.read(lambda tx: tx.changes_after(WS, 0, 10))]
    # nobody follows: whatever is older than the followers' window goes
    assert await store.transact(lambda tx: tx.purge_changes(0.0, 25.0)) == 2
    assert await store.read(lambda tx: tx.changes_purged_upto()) == seqs[1]
    # two followers, one further behind: only what both have loaded goes
    await store.transact(lambda tx: tx.report_position("dst_a", seqs[3], 50.0))
    await store.transact(lambda tx: tx.report_position("dst_b", seqs[2], 50.0))
    assert await store.transact(lambda tx: tx.purge_changes(0.0, 45.0)) == 1
    assert [seq for seq, _ in await store.read(lambda tx: tx.changes_after(WS, 0, 10))] == [seqs[3]]
    # a follower silent since before the window no longer holds records back
    assert await store.transact(lambda tx: tx.purge_changes(0.0, 60.0)) == 1
    assert await store.read(lambda tx: tx.changes_after(WS, 0, 10)) == []
    assert await store.transact(lambda tx: tx.purge_changes(0.0, 60.0)) == 0  # nothing goes twice

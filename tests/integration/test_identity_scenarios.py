"""Identity scenarios, end to end through the unify stages, on SQLite and the real PostgreSQL.

Each scenario is a story a CDP must get right: the anonymous visitor who signs up, one person
on three devices, the family tablet two people share, junk identifiers, events arriving out
of order, a late alias, two workers merging the same person at once, and an operator who asks
why a profile looks the way it does and undoes a merge.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from eventyard.quality.metrics import Metrics
from eventyard.state.identity_base import GraphTx
from eventyard.testing.identity import BACKENDS, Unify, postgres_available, postgres_database, twin, unify
from eventyard.testing.services import require_service
from eventyard.unify import stamp
from eventyard.unify.identity_rules import IdentityRules
from eventyard.unify.identity_service import IdentityService

_ids = itertools.count(1)


def ev(kind: str, at: str, **fields: Any) -> dict[str, Any]:
    """A normalized event at ``2026-03-01T<at>Z``."""
    event: dict[str, Any] = {
        "type": kind,
        "messageId": fields.pop("messageId", f"m{next(_ids)}"),
        "context": fields.pop("context", {}),
        "timestamp": f"2026-03-01T{at}Z",
    }
    event.update(fields)
    return event


def profile_of(event: Any) -> str:
    pid = stamp.stamped(event.event)[0]
    assert pid is not None, f"event {event.message_id} was not stamped"
    return pid


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


async def test_anonymous_visitor_becomes_identified(u: Unify) -> None:
    browse = await u.send(
        ev("page", "10:00:00", anonymousId="anon-1", name="Home"),
        ev("track", "10:01:00", anonymousId="anon-1", event="Product Viewed", properties={"sku": "A1"}),
    )
    anonymous = profile_of(browse[0])
    assert profile_of(browse[1]) == anonymous
    signup = await u.send(
        ev(
            "identify",
            "10:05:00",
            anonymousId="anon-1",
            userId="ana",
            traits={"email": "Ana@Example.com", "plan": "pro"},
        )
    )
    assert profile_of(signup[0]) == anonymous  # the anonymous profile simply gains the user id
    later = await u.send(ev("track", "10:06:00", userId="ana", event="Order Completed"))
    assert profile_of(later[0]) == anonymous
    shown = await u.show("email:ana@example.com")
    assert shown["profile_id"] == anonymous
    assert shown["traits"] == {"email": "Ana@Example.com", "plan": "pro"}
    assert {(i["type"], i["id"]) for i in shown["identifiers"]} == {
        ("anonymous_id", "anon-1"),
        ("user_id", "ana"),
        ("email", "ana@example.com"),
    }
    assert [e["message_id"] for e in shown["events"]] == [
        later[0].message_id,
        signup[0].message_id,
        browse[1].message_id,
        browse[0].message_id,
    ]
    meta = shown["metadata"]
    assert (meta["first_seen_at"], meta["last_seen_at"]) == ("2026-03-01T10:00:00.000Z", "2026-03-01T10:06:00.000Z")
    assert meta["first_message_id"] == browse[0].message_id and meta["source_ids"] == [u.source_id]


async def test_one_person_on_three_devices(u: Unify) -> None:
    web = await u.send(ev("page", "09:00:00", anonymousId="web-1"))
    phone = await u.send(
        ev("screen", "09:10:00", anonymousId="ios-1", name="Home", context={"device": {"id": "IDFV-1", "type": "ios"}})
    )
    speaker = await u.send(ev("track", "09:20:00", anonymousId="spk-1", event="Skill Opened"))
    devices = {profile_of(web[0]), profile_of(phone[0]), profile_of(speaker[0])}
    assert len(devices) == 3
    await u.send(ev("identify", "10:00:00", anonymousId="ios-1", userId="sam", traits={"name": "Sam"}))
    await u.send(ev("identify", "10:05:00", anonymousId="web-1", userId="sam"))
    await u.send(ev("identify", "10:10:00", anonymousId="spk-1", userId="sam"))
    sam = await u.find("user_id:sam")
    assert sam is not None
    assert {await u.current(p) for p in devices} == {sam.id}
    for ref in ("anonymous_id:web-1", "anonymous_id:ios-1", "anonymous_id:spk-1", "ios.id:IDFV-1"):
        found = await u.find(ref)
        assert found is not None and found.id == sam.id
    explained = await u.explain("user_id:sam")
    assert len(explained["merges"]) == 2 and {m["rule"] for m in explained["merges"]} == {"shared_identifier"}
    assert len(explained["members"]) == 3
    shown = await u.show("user_id:sam")
    assert len(shown["events"]) == 6


async def test_shared_family_tablet_never_merges_two_users(u: Unify) -> None:
    await u.send(ev("page", "08:00:00", anonymousId="tablet"))
    await u.send(ev("identify", "08:01:00", anonymousId="tablet", userId="mom", traits={"email": "mom@family.org"}))
    dad = await u.send(
        ev("identify", "20:00:00", anonymousId="tablet", userId="dad", traits={"email": "dad@family.org"})
    )
    mom_profile, dad_profile = await u.find("user_id:mom"), await u.find("user_id:dad")
    assert mom_profile is not None and dad_profile is not None and mom_profile.id != dad_profile.id
    assert profile_of(dad[0]) == dad_profile.id
    # the tablet's id stays with the profile that had it first
    tablet = await u.find("anonymous_id:tablet")
    assert tablet is not None and tablet.id == mom_profile.id
    dad_view = await u.show("user_id:dad")
    assert {(i["type"], i["id"]) for i in dad_view["identifiers"]} == {("user_id", "dad"), ("email", "dad@family.org")}
    refused = (await u.explain("user_id:dad"))["refused"]
    assert [(r["identifier"], r["rule"]) for r in refused] == [("anonymous_id:tablet", "limit:user_id")]
    assert "may hold 1 user_id" in refused[0]["detail"]
    # both keep using the tablet: never merged, however often
    for i in range(3):
        await u.send(ev("identify", f"21:0{i}:00", anonymousId="tablet", userId="dad"))
        await u.send(ev("identify", f"21:1{i}:00", anonymousId="tablet", userId="mom"))
    assert (await u.explain("user_id:mom"))["merges"] == []
    assert (await u.explain("user_id:dad"))["merges"] == []
    assert (await u.explain("user_id:dad"))["refused"][0]["count"] == 4


async def test_blocked_values_are_never_identifiers(u: Unify) -> None:
    metrics = u.identity.metrics
    assert metrics is not None
    first = await u.send(ev("identify", "10:00:00", userId="u1", anonymousId="anonymous", traits={"email": "null"}))
    second = await u.send(ev("identify", "10:01:00", userId="u2", anonymousId="anonymous", traits={"email": "NULL"}))
    assert profile_of(first[0]) != profile_of(second[0])
    assert await u.find("anonymous_id:anonymous") is None and await u.find("email:null") is None
    zero = await u.send(ev("track", "10:02:00", userId="00000000-0000-0000-0000-000000000000", event="X"))
    assert stamp.stamped(zero[0].event) == (None, None)  # nothing left to resolve by; the event still flows
    undefined = await u.send(ev("page", "10:03:00", anonymousId=" undefined ", userId="u1"))
    assert profile_of(undefined[0]) == profile_of(first[0])
    refused = (await u.explain("user_id:u1"))["refused"]
    assert {(r["identifier"], r["rule"]) for r in refused} == {
        ("anonymous_id:anonymous", "blocked_value"),
        ("email:null", "blocked_value"),
        ("anonymous_id:undefined", "blocked_value"),
    }
    text = metrics.render().decode()
    assert 'eventyard_identity_refused_total{rule="blocked_value"} 6.0' in text
    assert 'eventyard_identity_events_total{outcome="no_identifier"} 1.0' in text


async def test_custom_rules_block_more_and_limit_per_period(u: Unify) -> None:
    rules = IdentityRules(blocked_values=["test@example.com"], blocked_patterns=["^guest-.*$"])
    await u.identity.set_rules(u.workspace_id, rules)
    await u.send(ev("identify", "10:00:00", userId="guest-7", anonymousId="a1", traits={"email": "Test@Example.com"}))
    assert await u.find("user_id:guest-7") is None and await u.find("email:test@example.com") is None
    assert await u.find("anonymous_id:a1") is not None


async def test_events_out_of_order(u: Unify) -> None:
    newer = await u.send(
        ev("identify", "12:00:00", userId="olga", traits={"name": "Olga B.", "city": "Oslo"}),
    )
    older = await u.send(
        ev("identify", "09:00:00", userId="olga", traits={"name": "Olga A.", "phone": "+47 1"}),
        ev("page", "08:00:00", userId="olga"),
    )
    shown = await u.show("user_id:olga")
    assert shown["traits"] == {"name": "Olga B.", "city": "Oslo", "phone": "+47 1"}
    meta = shown["metadata"]
    assert meta["first_message_id"] == older[1].message_id and meta["last_message_id"] == newer[0].message_id
    assert [e["message_id"] for e in shown["events"]] == [
        newer[0].message_id,
        older[0].message_id,
        older[1].message_id,
    ]
    # a merge keeps the newest value of each trait from either side
    await u.send(ev("identify", "13:00:00", anonymousId="x", traits={"city": "Bergen"}))
    await u.send(ev("identify", "11:00:00", anonymousId="x", userId="olga", traits={"name": "old name"}))
    merged = await u.show("user_id:olga")
    assert merged["traits"]["city"] == "Bergen" and merged["traits"]["name"] == "Olga B."


async def test_late_alias_joins_the_anonymous_history(u: Unify) -> None:
    early = await u.send(ev("page", "07:00:00", anonymousId="visitor-9"))
    await u.send(ev("identify", "08:00:00", userId="lee", anonymousId="other-device"))
    alias = await u.send(ev("alias", "08:30:00", previousId="visitor-9", userId="lee"))
    lee = await u.find("user_id:lee")
    assert lee is not None and profile_of(alias[0]) == lee.id
    assert await u.current(profile_of(early[0])) == lee.id
    merges = (await u.explain("user_id:lee"))["merges"]
    assert [(m["rule"], m["message_id"]) for m in merges] == [("alias", alias[0].message_id)]
    # an alias between two known user ids is refused: one user_id per profile
    await u.send(ev("identify", "09:00:00", userId="kim"))
    refused_alias = await u.send(ev("alias", "09:30:00", previousId="kim", userId="lee"))
    kim = await u.find("user_id:kim")
    assert kim is not None and kim.id != lee.id and profile_of(refused_alias[0]) == lee.id
    refused = (await u.explain("user_id:lee"))["refused"]
    assert [(r["identifier"], r["rule"]) for r in refused] == [("user_id:kim", "limit:user_id")]


async def test_rudderstack_merge_call_links_two_identifiers(u: Unify) -> None:
    await u.send(ev("identify", "10:00:00", userId="r1", traits={"email": "r@x.io"}))
    await u.send(ev("identify", "10:01:00", anonymousId="r-anon", traits={"phone": "555"}))
    await u.send(
        ev(
            "merge",
            "10:02:00",
            userId="r1",
            mergeProperties=[{"type": "email", "value": "r@x.io"}, {"type": "phone", "value": "555"}],
        )
    )
    r1, phone = await u.find("user_id:r1"), await u.find("phone:555")
    assert r1 is not None and phone is not None and r1.id == phone.id
    assert [m["rule"] for m in (await u.explain("user_id:r1"))["merges"]] == ["merge"]


async def test_group_calls_make_accounts_and_links(u: Unify) -> None:
    sent = await u.send(
        ev("group", "10:00:00", userId="ada", groupId="acme", traits={"name": "Acme", "plan": "enterprise"}),
        ev("group", "10:01:00", userId="bob", groupId="acme", traits={"employees": 50}),
    )
    account = stamp.stamped(sent[0].event)[1]
    assert account is not None and stamp.stamped(sent[1].event)[1] == account
    acme = await u.show("group_id:acme")
    assert acme["profile_id"] == account and acme["collection"] == "accounts"
    assert acme["traits"] == {"name": "Acme", "plan": "enterprise", "employees": 50}
    assert sorted(e["external_ids"][0]["id"] for e in acme["links"]) == ["ada", "bob"]
    ada = await u.show("user_id:ada")
    assert [lk["profile_id"] for lk in ada["links"]] == [account] and ada["traits"] == {}


async def test_concurrent_merges_of_one_person(u: Unify, tmp_path: Path) -> None:
    """Two workers (separate connections) resolve the same person at the same moment, many times."""
    second = IdentityService(twin(u.identity.store), u.state, Metrics())
    await second.start()
    try:
        worker_b = Unify(u.state, second, u.source_id, u.workspace_id)
        rounds = 12
        for r in range(rounds):
            await asyncio.gather(
                u.send(ev("identify", f"10:{r:02d}:00", userId=f"p{r}", anonymousId=f"a{r}")),
                worker_b.send(ev("identify", f"10:{r:02d}:01", userId=f"p{r}", anonymousId=f"b{r}")),
                u.send(ev("page", f"10:{r:02d}:02", anonymousId=f"b{r}", context={"traits": {"email": f"p{r}@x.io"}})),
                worker_b.send(ev("page", f"10:{r:02d}:03", anonymousId=f"a{r}", context={"device": {"id": f"d{r}"}})),
            )
        for r in range(rounds):
            person = await u.find(f"user_id:p{r}")
            assert person is not None
            for ref in (f"anonymous_id:a{r}", f"anonymous_id:b{r}", f"email:p{r}@x.io", f"device.id:d{r}"):
                other = await u.find(ref)
                assert other is not None and other.id == person.id, ref

        def invariants(tx: GraphTx) -> tuple[int, int]:
            counts = tx.counts(u.workspace_id)
            return counts["profiles"], counts["identifiers"]

        profiles, identifiers = await u.identity.store.read(invariants)
        assert (profiles, identifiers) == (rounds, rounds * 5)
    finally:
        await second.close()


async def test_explain_and_split_a_wrong_merge(u: Unify) -> None:
    browse = await u.send(
        ev("page", "09:00:00", anonymousId="kiosk"),
        ev("identify", "09:01:00", anonymousId="kiosk", traits={"favourite": "tea"}),
    )
    kiosk = profile_of(browse[0])
    signup = await u.send(ev("identify", "10:00:00", userId="vic", traits={"email": "vic@x.io", "favourite": "coffee"}))
    vic = profile_of(signup[0])
    wrong = await u.send(ev("track", "11:00:00", userId="vic", anonymousId="kiosk", event="Oops"))
    # the older profile (the kiosk's) absorbs the newer one
    merged = await u.find("user_id:vic")
    assert merged is not None and merged.id == kiosk and await u.current(vic) == kiosk
    explained = await u.explain("user_id:vic")
    [merge] = explained["merges"]
    assert (merge["from"], merge["into"], merge["message_id"], merge["rule"]) == (
        vic,
        kiosk,
        wrong[0].message_id,
        "shared_identifier",
    )
    assert merge["identifiers"] == {"user_id:vic": vic, "anonymous_id:kiosk": kiosk}
    via = {i["identifier"]: i for i in explained["identifiers"]}
    assert via["user_id:vic"]["via_merge"] == merge["id"] and via["user_id:vic"]["first_profile"] == vic
    assert via["email:vic@x.io"]["via_merge"] == merge["id"]
    assert "via_merge" not in via["anonymous_id:kiosk"]

    result = await u.identity.split(u.workspace_id, kiosk, merge["id"])
    parts = {p.status: p for p in result.parts}
    # the merged-away side gets its id back, so the stamps of its earlier events are right again
    assert parts["restored"].profile_id == vic and parts["kept"].profile_id == kiosk
    assert parts["restored"].identifiers == ["email:vic@x.io", "user_id:vic"]
    assert parts["kept"].identifiers == ["anonymous_id:kiosk"]
    assert await u.current(vic) == vic
    kiosk_view, vic_view = await u.show("anonymous_id:kiosk"), await u.show("user_id:vic")
    assert kiosk_view["profile_id"] == kiosk and kiosk_view["traits"] == {"favourite": "tea"}
    assert vic_view["profile_id"] == vic and vic_view["traits"] == {"email": "vic@x.io", "favourite": "coffee"}
    assert sorted(e["message_id"] for e in kiosk_view["events"]) == sorted(b.message_id for b in browse)
    # the event that caused the merge goes with its highest-priority identifier (user_id)
    assert sorted(e["message_id"] for e in vic_view["events"]) == sorted([signup[0].message_id, wrong[0].message_id])
    again = await u.explain("user_id:vic")
    assert again["merges"][0]["undone_reason"] == "split by an operator"
    assert {r["rule"] for r in again["refused"]} == {"operator_split"}
    with pytest.raises(Exception, match="already split"):
        await u.identity.split(u.workspace_id, vic, merge["id"])
    # the split holds: the kiosk's next anonymous event does not pull vic back
    await u.send(ev("page", "12:00:00", anonymousId="kiosk"))
    assert (await u.find("anonymous_id:kiosk")) is not None and await u.current(vic) == vic


async def test_split_is_refused_when_other_events_link_the_sides(u: Unify) -> None:
    await u.send(ev("page", "09:00:00", anonymousId="k"))
    await u.send(ev("identify", "10:00:00", userId="w", anonymousId="k"))
    await u.send(ev("track", "11:00:00", userId="w", anonymousId="k", event="Again"))
    w = await u.find("user_id:w")
    assert w is not None
    assert (await u.explain("user_id:w"))["merges"] == []  # the anonymous profile just gained the user id
    await u.send(ev("page", "12:00:00", anonymousId="k2"))
    await u.send(ev("track", "12:01:00", userId="w", anonymousId="k2", event="Link"))
    await u.send(ev("track", "12:02:00", userId="w", anonymousId="k2", event="Link again"))
    [merge] = (await u.explain("user_id:w"))["merges"]
    with pytest.raises(Exception, match="other events link the two sides"):
        await u.identity.split(u.workspace_id, w.id, merge["id"])


async def test_remove_an_identifier_and_block_it(u: Unify) -> None:
    await u.send(ev("identify", "10:00:00", userId="ann", traits={"email": "team@corp.io"}))
    await u.send(ev("identify", "10:05:00", anonymousId="b-anon", traits={"email": "team@corp.io", "name": "Ben"}))
    ann = await u.find("user_id:ann")
    assert ann is not None
    ben_side = await u.find("anonymous_id:b-anon")
    assert ben_side is not None and ben_side.id == ann.id  # the shared mailbox linked them
    result = await u.identity.remove_identifier(u.workspace_id, ann.id, "email:team@corp.io", block=True)
    assert {p.status for p in result.parts} == {"kept", "new"}
    assert result.rules is not None and "team@corp.io" in result.rules.blocked_values
    ann_after, ben_after = await u.find("user_id:ann"), await u.find("anonymous_id:b-anon")
    assert ann_after is not None and ben_after is not None and ann_after.id != ben_after.id
    assert await u.find("email:team@corp.io") is None
    assert (await u.show("anonymous_id:b-anon"))["traits"] == {"email": "team@corp.io", "name": "Ben"}
    # blocked now: the mailbox links nobody again
    await u.send(ev("identify", "11:00:00", userId="ann", anonymousId="c-anon", traits={"email": "team@corp.io"}))
    assert (await u.find("user_id:ann")) is not None
    assert await u.find("email:team@corp.io") is None
    removed = [r for r in (await u.explain("user_id:ann"))["refused"] if r["rule"] == "operator_removed"]
    assert [r["identifier"] for r in removed] == ["email:team@corp.io"]


async def test_history_retention_and_no_history(u: Unify) -> None:
    await u.send(ev("page", "10:00:00", anonymousId="r1"), ev("page", "10:01:00", anonymousId="r1"))
    assert len((await u.show("anonymous_id:r1"))["events"]) == 2
    service = u.identity
    real_clock = service.clock
    service.clock = lambda: real_clock() + 31 * 86400  # a month later: past the default 30 days
    assert await service.purge_history() == 2
    assert (await u.show("anonymous_id:r1"))["events"] == []
    service.clock = real_clock
    service.retention_seconds = 0  # keep no history at all
    await u.send(ev("page", "11:00:00", anonymousId="r1", context={"traits": {"plan": "free"}}))
    shown = await u.show("anonymous_id:r1")
    assert shown["events"] == [] and shown["traits"] == {"plan": "free"}
    assert shown["metadata"]["last_seen_at"] == "2026-03-01T11:00:00.000Z"


async def test_a_batch_processed_again_changes_nothing(u: Unify) -> None:
    """After a crash the runner leases the same records again: resolution must be idempotent."""
    batch = [
        ev("page", "10:00:00", anonymousId="again-a"),
        ev("identify", "10:01:00", anonymousId="again-a", userId="again", traits={"plan": "pro"}),
        ev("page", "10:02:00", anonymousId="again-b"),
        ev("track", "10:03:00", anonymousId="again-b", userId="again", event="Merged"),
    ]
    first = await u.send(*(dict(e, context=dict(e["context"])) for e in batch))

    def counts(tx: GraphTx) -> dict[str, int]:
        return tx.counts(u.workspace_id)

    before = await u.identity.store.read(counts)
    again = await u.send(*(dict(e, context=dict(e["context"])) for e in batch), record=first[0].record_id)
    assert len(again) == 4  # the same log records: not duplicates
    assert {await u.current(profile_of(e)) for e in again} == {await u.current(profile_of(e)) for e in first}
    assert await u.identity.store.read(counts) == before == {"profiles": 1, "identifiers": 3, "merges": 1, "events": 4}
    assert (await u.show("user_id:again"))["traits"] == {"plan": "pro"}


async def test_a_retried_batch_counts_its_refusals_once(u: Unify) -> None:
    """Refusal notes are counted per event position: the same records resolved again (the
    runner retries a batch) add nothing, a new event with the same refusal adds one."""
    await u.send(ev("identify", "09:00:00", userId="mom", anonymousId="shared-tablet"))
    batch = [
        ev("identify", "10:00:00", userId="dad", anonymousId="shared-tablet"),
        ev("track", "10:01:00", userId="dad", anonymousId="shared-tablet", event="Played", context={"traits": {}}),
        ev("group", "10:02:00", userId="dad", anonymousId="null", groupId="null"),
    ]
    first = await u.send(*(dict(e, context=dict(e["context"])) for e in batch))

    async def noted() -> list[tuple[str, str, int]]:
        refused = (await u.explain("user_id:dad"))["refused"]
        return sorted((r["identifier"], r["rule"], r["count"]) for r in refused)

    once = await noted()
    assert ("anonymous_id:shared-tablet", "limit:user_id", 2) in once
    assert [n for n in once if n[0] == "anonymous_id:null"] == [("anonymous_id:null", "blocked_value", 1)]
    for _ in range(2):  # retried twice, from the same log positions
        await u.send(*(dict(e, context=dict(e["context"])) for e in batch), record=first[0].record_id)
    assert await noted() == once
    await u.send(ev("track", "10:05:00", userId="dad", anonymousId="shared-tablet", event="Paused"))
    assert ("anonymous_id:shared-tablet", "limit:user_id", 3) in await noted()

"""Identity rules, identifier extraction and the merge protection, without a database."""

from __future__ import annotations

import itertools
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventyard.unify.identifiers import extract
from eventyard.unify.identity_graph import EmptyLoader, Item, WorkingGraph
from eventyard.unify.identity_rules import (
    ACCOUNTS,
    USERS,
    IdentifierRule,
    IdentityRules,
    parse_rules,
    period_seconds,
    rules_from_json,
)

DAY = 86400.0


def test_default_rules_follow_segment() -> None:
    rules = IdentityRules()
    types = [r.type for r in rules.identifiers]
    assert types[:2] == ["user_id", "email"] and types[2:] == sorted(types[2:])
    assert rules.rule_of(USERS, "user_id") == (0, 1, None)
    assert rules.rule_of(USERS, "email") == (1, 5, 7 * DAY)
    assert rules.rule_of(USERS, "custom_thing")[1:] == (5, 7 * DAY)
    assert rules.rule_of(USERS, "custom_thing")[0] > rules.rule_of(USERS, "phone")[0]
    assert (rules.max_merges, rules.max_identifiers, rules.max_traits) == (100, 1000, 300)
    assert rules.rule_of(ACCOUNTS, "group_id") == (0, 1, None)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "0",
        "0000",
        "-",
        "00000000-0000-0000-0000-000000000000",
        "-1",
        "null",
        "NULL",
        " Null ",
        "anonymous",
        "Anonymous",
        "undefined",
    ],
)
def test_default_blocked_values(value: str) -> None:
    assert IdentityRules().blocked(value)


@pytest.mark.parametrize("value", ["10", "-10", "u-0", "nullable", "anonymous-1", "a@b.c"])
def test_real_values_are_not_blocked(value: str) -> None:
    assert not IdentityRules().blocked(value)


def test_periods() -> None:
    assert period_seconds("ever") is None
    assert period_seconds("Weekly") == 7 * DAY
    assert period_seconds("3 days") == 3 * DAY
    assert period_seconds("30d") == 30 * DAY
    with pytest.raises(ValueError, match="not one of"):
        period_seconds("fortnightly")


def test_rules_are_validated() -> None:
    with pytest.raises(ValueError, match="listed twice"):
        parse_rules({"identifiers": [{"type": "email"}, {"type": "email"}]})
    with pytest.raises(ValueError, match="lower-case"):
        parse_rules({"identifiers": [{"type": "Email:x"}]})
    with pytest.raises(ValueError, match="limit"):
        parse_rules({"identifiers": [{"type": "email", "limit": 0}]})
    with pytest.raises(ValueError, match="regular expression"):
        parse_rules({"blocked_patterns": ["("]})
    with pytest.raises(ValueError, match="unknown field"):
        parse_rules({"colour": "red"})
    custom = parse_rules({"identifiers": [{"type": "user_id", "limit": 1, "period": "ever"}], "max_merges": 3})
    assert rules_from_json(custom.to_json()) == custom
    assert rules_from_json(None) == IdentityRules()


def _event(kind: str = "track", **fields: Any) -> dict[str, Any]:
    return {"type": kind, "messageId": "m", "context": fields.pop("context", {}), **fields}


def test_extraction_in_priority_order() -> None:
    event = _event(
        "identify",
        userId="u1",
        anonymousId="a1",
        traits={"email": " Ana@Example.COM ", "phone": 4712345},
        context={
            "device": {"id": "dev", "advertisingId": "ad", "token": "push", "type": "android"},
            "externalIds": [
                {"id": "ga-1", "type": "ga_client_id", "collection": "users", "encoding": "none"},
                {"id": "crm-9", "type": "CRM_ID"},
                {"id": "acct", "type": "salesforce_id", "collection": "accounts"},
            ],
        },
    )
    found = extract(event, IdentityRules())
    assert found.users == [
        "user_id:u1",
        "email:ana@example.com",
        "android.id:dev",
        "android.idfa:ad",
        "android.push_token:push",
        "anonymous_id:a1",
        "ga_client_id:ga-1",
        "phone:4712345",
        "crm_id:crm-9",
    ]
    assert found.accounts == [] and found.blocked == []


def test_extraction_details() -> None:
    rules = IdentityRules()
    # group traits belong to the account; context.traits to the user
    group = _event(
        "group",
        userId="u",
        groupId="g1",
        traits={"email": "billing@acme.io"},
        context={
            "traits": {"email": "me@acme.io"},
            "externalIds": [{"id": "sf", "type": "sf_id", "collection": "accounts"}],
        },
    )
    found = extract(group, rules)
    assert found.users == ["user_id:u", "email:me@acme.io"]
    assert found.accounts == ["group_id:g1", "sf_id:sf"]
    # iOS from os.name; a device without a known OS is a generic device
    assert extract(_event(context={"device": {"id": "x"}, "os": {"name": "iPadOS"}}), rules).users == ["ios.id:x"]
    assert extract(_event(context={"device": {"id": "x"}}), rules).users == ["device.id:x"]
    # alias: previousId is typed later, against the graph
    alias = extract(_event("alias", userId="new", previousId="old"), rules)
    assert (alias.users, alias.previous_id) == (["user_id:new"], "old")
    # RudderStack merge properties
    merge = extract(
        _event("merge", mergeProperties=[{"type": "userId", "value": 7}, {"type": "Email", "value": "X@Y.z"}]), rules
    )
    assert merge.users == ["user_id:7", "email:x@y.z"]
    # blocked values are set aside with the reason
    blocked = extract(_event(userId="null", anonymousId="a", context={"traits": {"email": "undefined"}}), rules)
    assert blocked.users == ["anonymous_id:a"]
    assert blocked.blocked == [("user_id:null", "blocked_value"), ("email:undefined", "blocked_value")]


def test_configurable_set_of_identifiers() -> None:
    rules = IdentityRules(
        identifiers=[IdentifierRule("user_id", 1, "ever"), IdentifierRule("email", enabled=False)],
        accept_unlisted_external_ids=False,
    )
    event = _event(
        userId="u",
        anonymousId="a",
        context={"traits": {"email": "e@x.io"}, "externalIds": [{"id": "1", "type": "crm"}]},
    )
    assert extract(event, rules).users == ["user_id:u"]


_seq = itertools.count()


def graph(rules: IdentityRules | None = None) -> WorkingGraph:
    return WorkingGraph("ws", USERS, rules or IdentityRules(), EmptyLoader(), 1000.0, lambda: f"p{next(_seq):03d}")


def item(*keys: str, ts: float = 0.0, message: str = "m") -> Item:
    return Item(list(keys), message, "src", ts)


def test_flat_matching_creates_adds_and_merges() -> None:
    g = graph()
    a = g.resolve(item("anonymous_id:a"))
    b = g.resolve(item("anonymous_id:b"))
    assert a is not None and b is not None and a.created and b.created and a.profile_id != b.profile_id
    both = g.resolve(item("user_id:u", "anonymous_id:a", "anonymous_id:b", message="link"))
    assert both is not None and both.profile_id == a.profile_id and both.merged == [b.profile_id]
    assert g.current(b.profile_id) == a.profile_id
    [merge] = g.merges
    assert (merge.into_profile, merge.from_profile, merge.message_id) == (a.profile_id, b.profile_id, "link")
    assert merge.identifiers == {"anonymous_id:a": a.profile_id, "anonymous_id:b": b.profile_id}
    assert g.resolve(item()) is None


def test_limit_breach_drops_the_lowest_priority_identifier_and_retries() -> None:
    g = graph()
    mom = g.resolve(item("user_id:mom", "email:family@x.io", "anonymous_id:tablet"))
    dad = g.resolve(item("user_id:dad", "email:family@x.io", "anonymous_id:tablet"))
    assert mom is not None and dad is not None and dad.profile_id != mom.profile_id and dad.created
    assert [(r.key, r.rule) for r in dad.refused] == [
        ("anonymous_id:tablet", "limit:user_id"),
        ("email:family@x.io", "limit:user_id"),
    ]


def test_limits_count_over_their_period() -> None:
    rules = IdentityRules(
        identifiers=[IdentifierRule("user_id", 1, "ever"), IdentifierRule("anonymous_id", 2, "weekly")]
    )
    g = graph(rules)
    first = g.resolve(item("user_id:u", "anonymous_id:a1", ts=0.0))
    assert first is not None
    g.resolve(item("user_id:u", "anonymous_id:a2", ts=DAY))
    third = g.resolve(item("user_id:u", "anonymous_id:a3", ts=2 * DAY))
    assert third is not None and [(r.key, r.rule) for r in third.refused] == [("anonymous_id:a3", "limit:anonymous_id")]
    later = g.resolve(item("user_id:u", "anonymous_id:a4", ts=9 * DAY))  # a1 and a2 are out of the week
    assert later is not None and later.refused == [] and later.profile_id == first.profile_id


def test_tightened_rules_do_not_stop_matching() -> None:
    g = graph()
    p = g.resolve(item("user_id:u", *(f"anonymous_id:a{i}" for i in range(5))))
    g.rules = msgspec.structs.replace(
        g.rules, identifiers=[IdentifierRule("user_id", 1, "ever"), IdentifierRule("anonymous_id", 2)]
    )
    again = g.resolve(item("user_id:u", "anonymous_id:a1", "email:new@x.io"))
    assert p is not None and again is not None and again.profile_id == p.profile_id and again.refused == []


def test_caps_on_identifiers_and_merges() -> None:
    g = graph(IdentityRules(max_identifiers=3, max_merges=1))
    full = g.resolve(item("user_id:u", "anonymous_id:a", "anonymous_id:b"))
    more = g.resolve(item("user_id:u", "anonymous_id:c"))
    assert full is not None and more is not None and more.profile_id == full.profile_id
    assert [(r.key, r.rule) for r in more.refused] == [("anonymous_id:c", "cap:identifiers")]
    g2 = graph(IdentityRules(max_merges=1))
    for name in ("x", "y", "z"):
        g2.resolve(item(f"anonymous_id:{name}"))
    g2.resolve(item("user_id:u", "anonymous_id:x", "anonymous_id:y"))
    capped = g2.resolve(item("user_id:u", "anonymous_id:z"))
    assert capped is not None and [(r.key, r.rule) for r in capped.refused] == [("anonymous_id:z", "cap:merges")]


def test_no_merge_items_keep_the_first_profile() -> None:
    g = graph()
    a = g.resolve(item("anonymous_id:a"))
    g.resolve(item("anonymous_id:b"))
    cut = g.resolve(Item(["user_id:u", "anonymous_id:a", "anonymous_id:b"], "m", "s", 0.0, no_merge=True))
    assert a is not None and cut is not None and cut.profile_id == a.profile_id and cut.merged == []
    assert [r.rule for r in cut.refused] == ["split"]


_values = st.one_of(
    st.none(),
    st.sampled_from(["", " ", "null", "Anonymous", "0000", "-1", "u1", " a b ", "x@Y.io"]),
    st.integers(-2, 3),
    st.booleans(),
)


@given(
    kind=st.sampled_from(["track", "page", "screen", "identify", "group", "alias"]),
    user=_values,
    anonymous=_values,
    traits=st.one_of(st.none(), st.just({}), st.just({"email": "E@x.io"})),
    context=st.sampled_from([{}, {"ip": "1.2.3.4"}, {"traits": {"phone": 5}}, {"device": {"id": "d"}}]),
    disabled=st.sampled_from([None, "user_id", "anonymous_id"]),
)
def test_the_fast_path_agrees_with_the_full_extraction(
    kind: str, user: Any, anonymous: Any, traits: Any, context: dict[str, Any], disabled: str | None
) -> None:
    rules = IdentityRules()
    if disabled is not None:
        rules = IdentityRules(
            identifiers=[msgspec.structs.replace(r, enabled=r.type != disabled) for r in rules.identifiers]
        )
    event: dict[str, Any] = {"type": kind, "context": dict(context), "userId": user, "anonymousId": anonymous}
    if traits is not None:
        event["traits"] = traits
    fast = extract(event, rules)
    event["context"]["externalIds"] = []  # any of these keys sends it down the full path
    full = extract(event, rules)
    assert (fast.users, fast.blocked, fast.previous_id) == (full.users, full.blocked, full.previous_id)

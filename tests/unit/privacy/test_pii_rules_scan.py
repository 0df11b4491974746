"""PII rules: validation, path and kind rules, every action, per-destination overrides."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from eventyard.errors import ConfigError
from eventyard.privacy.pii_classify import hash_value, mask_value
from eventyard.privacy.pii_rules import PiiConfig, compile_rules, parse, rule_for, to_body
from eventyard.privacy.pii_scan import process
from eventyard.route.pii_transform import for_destination

DESTS = {"ads": "dst_ads", "warehouse": "dst_wh", "crm": "dst_crm"}


def rules(*items: dict[str, Any], detect: bool = False) -> Any:
    return compile_rules(parse({"detect": detect, "rules": list(items)}), DESTS)


def order(**props: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Order Completed",
        "userId": "u1",
        "properties": {"total": 10, **props},
        "context": {"ip": "203.0.113.9", "library": {"name": "analytics.js"}, "traits": {"email": "ana@example.com"}},
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"rules": [{"action": "encrypt", "path": "properties.x"}]}, "action must be one of"),
        ({"rules": [{"action": "hash"}]}, "needs a `path`, a `kind` or both"),
        ({"rules": [{"action": "hash", "kind": "passport"}]}, "kind must be one of"),
        ({"rules": [{"action": "hash", "path": "payload.email"}]}, "must start with one of"),
        ({"rules": [{"action": "hash", "path": "properties..email"}]}, "is not a key"),
        ({"rules": [{"action": "hash", "path": "properties.**"}]}, "must not end with '**'"),
        ({"rules": [{"action": "hash", "path": "userId.x"}]}, "userId has no fields"),
        ({"rules": [{"action": "block", "kind": "card", "destinations": {"ads": "allow"}}]}, "cannot have destination"),
        ({"rules": [{"action": "hash", "kind": "email", "destinations": {"ads": "nope"}}]}, "for destination 'ads'"),
        (
            {
                "rules": [
                    {"action": "hash", "kind": "email", "name": "a"},
                    {"action": "mask", "kind": "ip", "name": "a"},
                ]
            },
            "same name",
        ),
        ({"detect": "yes"}, "Expected `bool`"),
        ({"rules": [{"action": "hash", "kind": "email", "when": "always"}]}, "unknown field `when`"),
    ],
)
def test_invalid_rules_say_what_is_wrong(body: Any, message: str) -> None:
    with pytest.raises(ConfigError, match="pii rules") as info:
        parse(body)
    assert message in str(info.value)


def test_round_trip_of_the_stored_form() -> None:
    body = {
        "detect": True,
        "rules": [
            {"action": "hash", "path": "properties.email", "kind": "email", "destinations": {"warehouse": "allow"}}
        ],
    }
    assert to_body(parse(body)) == body
    assert parse({}) == PiiConfig()


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("allow", "ana@example.com"),
        ("hash", hash_value("email", "ana@example.com")),
        ("mask", mask_value("email", "ana@example.com")),
    ],
)
def test_path_rule_actions(action: str, expected: str) -> None:
    event = order(email="Ana@Example.com ")
    event["properties"]["email"] = "ana@example.com"
    scan = process(event, rules({"path": "properties.email", "kind": "email", "action": action}))
    assert scan.blocked is None and scan.plan is None
    assert event["properties"]["email"] == expected
    assert scan.findings == [("properties.email", "email")]


def test_hash_normalizes_first() -> None:
    event = order(email="  Ana@Example.COM ")
    process(event, rules({"path": "properties.email", "action": "hash"}))
    assert event["properties"]["email"] == hash_value("email", "ana@example.com")


def test_drop_removes_the_field_and_block_drops_the_event() -> None:
    event = order(ssn="123-45-6789")
    scan = process(event, rules({"path": "properties.ssn", "action": "drop"}))
    assert "ssn" not in event["properties"] and scan.blocked is None
    event = order(card="4111 1111 1111 1111")
    scan = process(event, rules({"kind": "card", "action": "block", "name": "no cards"}))
    assert scan.blocked == "properties.card holds card and rule 'no cards' blocks such events"
    assert event["properties"]["card"] == "4111 1111 1111 1111", "a blocked event is left as it was"


def test_wildcards_and_arrays() -> None:
    event = order(items=[{"sku": "a", "phone": "+1 415 555 0100"}, {"sku": "b", "phone": "+1 415 555 0199"}])
    event["traits"] = {"home": {"phone": "+44 20 7946 0958"}, "work": {"phone": 4155550100}}
    scan = process(
        event,
        rules(
            {"path": "properties.items.$.phone", "action": "mask"},
            {"path": "traits.*.phone", "action": "hash", "kind": "phone"},
        ),
    )
    assert [i["phone"] for i in event["properties"]["items"]] == ["+* *** *** 0100", "+* *** *** 0199"]
    assert event["traits"]["home"]["phone"] == hash_value("phone", "+44 20 7946 0958")
    assert event["traits"]["work"]["phone"] == hash_value("phone", "4155550100"), "numbers are governed too"
    assert ("properties.items.$.phone", "phone") in scan.findings
    assert ("traits.work.phone", "phone") in scan.findings


def test_traits_root_covers_identify_traits_and_context_traits() -> None:
    event = order()
    event["traits"] = {"email": "bo@example.com"}
    process(event, rules({"path": "traits.email", "action": "hash"}))
    assert event["traits"]["email"] == hash_value("email", "bo@example.com")
    assert event["context"]["traits"]["email"] == hash_value("email", "ana@example.com")


def test_double_star_reaches_any_depth() -> None:
    event = order(a={"b": {"c": {"secret": "x1"}}}, secret="x2")
    process(event, rules({"path": "properties.**.secret", "action": "drop"}))
    assert event["properties"] == {"total": 10, "a": {"b": {"c": {}}}}


def test_path_rule_on_an_object_hashes_every_value_inside() -> None:
    event = order(address={"street": "1 Main St", "zip": 94107})
    process(event, rules({"path": "properties.address", "action": "hash"}))
    assert event["properties"]["address"] == {"street": hash_value(None, "1 Main St"), "zip": hash_value(None, "94107")}


def test_detection_covers_properties_traits_and_context() -> None:
    event = order(contact="bo@example.com", note="call me maybe", tel="(415) 555-0100")
    event["context"]["custom"] = {"owner_ip": "198.51.100.7"}
    event["context"]["page"] = {"url": "https://x.test/?email=ana@example.com", "referrer": "ana@example.com"}
    scan = process(event, rules(detect=True))
    assert sorted(scan.findings) == [
        ("context.custom.owner_ip", "ip"),
        ("context.ip", "ip"),
        ("context.traits.email", "email"),
        ("properties.contact", "email"),
        ("properties.tel", "phone"),
    ], "page data and the SDK's own context are not scanned"
    assert event["properties"]["contact"] == "bo@example.com", "detection alone changes nothing"


def test_kind_rules_act_on_detected_values_and_path_rules_win() -> None:
    event = order(contact="bo@example.com", email="cy@example.com")
    process(
        event,
        rules(
            {"path": "properties.email", "action": "allow"},
            {"kind": "email", "action": "mask"},
            {"kind": "email", "action": "drop"},
        ),
    )
    assert event["properties"]["email"] == "cy@example.com"
    assert event["properties"]["contact"] == "b***@example.com", "the first kind rule wins"
    assert event["context"]["traits"]["email"] == "a***@example.com"


def test_no_rules_and_no_detection_is_inactive() -> None:
    assert not rules().active
    assert rules(detect=True).active


def test_overrides_keep_the_received_value_for_other_destinations() -> None:
    event = order(email="Ana@Example.com")
    original = copy.deepcopy(event)
    scan = process(
        event,
        rules(
            {
                "path": "properties.email",
                "kind": "email",
                "action": "hash",
                "destinations": {"warehouse": "allow", "crm": "mask", "ads": "hash"},
            }
        ),
    )
    hashed = hash_value("email", "ana@example.com")
    assert event["properties"]["email"] == hashed, "the workspace action applies to the event"
    assert scan.plan is not None and len(scan.plan) == 1
    shared = copy.deepcopy(event)
    wh, why = for_destination(event, scan.plan, "dst_wh")
    assert wh is not None and why == "" and wh["properties"]["email"] == "Ana@Example.com"
    crm, _ = for_destination(event, scan.plan, "dst_crm")
    assert crm is not None and crm["properties"]["email"] == "A***@Example.com"
    ads, _ = for_destination(event, scan.plan, "dst_ads")
    assert ads is event, "an override equal to the workspace action changes nothing"
    other, _ = for_destination(event, scan.plan, "dst_unknown")
    assert other is event and other["properties"]["email"] == hashed
    assert event == shared, "per-destination copies never touch the shared event"
    assert original["properties"]["email"] == wh["properties"]["email"]


def test_dropped_at_workspace_level_restored_for_one_destination() -> None:
    event = order(ssn="123-45-6789")
    scan = process(event, rules({"path": "properties.ssn", "action": "drop", "destinations": {"warehouse": "allow"}}))
    assert "ssn" not in event["properties"]
    assert scan.plan is not None
    wh, _ = for_destination(event, scan.plan, "dst_wh")
    assert wh is not None and wh["properties"]["ssn"] == "123-45-6789"


def test_allowed_at_workspace_level_hashed_or_blocked_for_one_destination() -> None:
    event = order(email="ana@example.com")
    scan = process(
        event,
        rules({"kind": "email", "action": "allow", "destinations": {"ads": "hash", "crm": "block"}}),
    )
    assert event["properties"]["email"] == "ana@example.com"
    assert scan.plan is not None and {e.path for e in scan.plan} == {"properties.email", "context.traits.email"}
    ads, _ = for_destination(event, scan.plan, "dst_ads")
    assert ads is not None and ads["properties"]["email"] == hash_value("email", "ana@example.com")
    assert ads["context"]["traits"]["email"] == hash_value("email", "ana@example.com")
    assert event["context"]["traits"]["email"] == "ana@example.com"
    crm, why = for_destination(event, scan.plan, "dst_crm")
    assert crm is None and "blocks it for this destination" in why
    drop = process(
        order(email="x@example.com"), rules({"kind": "email", "action": "allow", "destinations": {"ads": "drop"}})
    )
    assert drop.plan is not None
    ads_event, _ = for_destination(order(email="x@example.com"), drop.plan, "dst_ads")
    assert ads_event is not None and "email" not in ads_event["properties"]


def test_overrides_for_unknown_destinations_are_ignored_when_compiled() -> None:
    compiled = compile_rules(
        parse({"rules": [{"kind": "email", "action": "hash", "destinations": {"gone": "allow"}}]}), DESTS
    )
    assert compiled.kind_rules["email"].overrides is None


def test_rule_for_reports_what_governs_a_found_field() -> None:
    config = parse(
        {
            "rules": [
                {"path": "traits.**.phone", "action": "mask", "name": "phones"},
                {"kind": "email", "action": "hash"},
            ]
        }
    )
    assert rule_for(config, "context.traits.home.phone", "phone").name == "phones"  # type: ignore[union-attr]
    assert rule_for(config, "traits.phone", "phone").name == "phones"  # type: ignore[union-attr]
    assert rule_for(config, "properties.email", "email").action == "hash"  # type: ignore[union-attr]
    assert rule_for(config, "properties.ip", "ip") is None

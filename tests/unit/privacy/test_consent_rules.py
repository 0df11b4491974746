"""Consent: every rule of Segment's and RudderStack's consent objects, as a table of cases."""

from __future__ import annotations

from typing import Any

import pytest

from eventyard.errors import ConfigError
from eventyard.privacy.consent import (
    ConsentConfig,
    DestinationConsent,
    blocked_by,
    category_id_problem,
    compile_for,
    parse,
    to_body,
)

ADS = DestinationConsent(("Advertising",))
ADS_AND_ANALYTICS = DestinationConsent(("Advertising", "Analytics"))
ADS_AND_ANALYTICS_OR = DestinationConsent(("Advertising", "Analytics"), strategy="or")


def seg(prefs: Any) -> dict[str, Any]:
    return {"type": "track", "event": "x", "context": {"consent": {"categoryPreferences": prefs}}}


def rs(**managed: Any) -> dict[str, Any]:
    return {"type": "track", "event": "x", "context": {"consentManagement": managed}}


SEGMENT_CASES: list[tuple[str, dict[str, Any], DestinationConsent, bool]] = [
    ("no context: no enforcement", {"type": "track", "event": "x"}, ADS, False),
    ("empty context: no enforcement", {"type": "track", "event": "x", "context": {}}, ADS, False),
    ("consent object without preferences: no enforcement", {"context": {"consent": {}}}, ADS, False),
    ("preferences not an object: no enforcement", seg(["Advertising"]), ADS, False),
    ("empty preferences: every category false, mapped destination blocked", seg({}), ADS, True),
    ("consented", seg({"Advertising": True}), ADS, False),
    ("refused", seg({"Advertising": False}), ADS, True),
    ("category not mentioned counts as refused", seg({"Analytics": True}), ADS, True),
    ("ids are case-sensitive", seg({"advertising": True}), ADS, True),
    ("only true consents (a string does not)", seg({"Advertising": "true"}), ADS, True),
    (
        "several categories: all needed (all given)",
        seg({"Advertising": True, "Analytics": True}),
        ADS_AND_ANALYTICS,
        False,
    ),
    (
        "several categories: all needed (one refused)",
        seg({"Advertising": True, "Analytics": False}),
        ADS_AND_ANALYTICS,
        True,
    ),
    ("several categories: all needed (one missing)", seg({"Advertising": True}), ADS_AND_ANALYTICS, True),
    (
        "Segment's rule ignores the custom-provider strategy",
        seg({"Advertising": True}),
        ADS_AND_ANALYTICS_OR,
        True,
    ),
    ("extra categories do not matter", seg({"Advertising": True, "Other": False}), ADS, False),
]

RUDDERSTACK_CASES: list[tuple[str, dict[str, Any], DestinationConsent, bool]] = [
    ("no denied ids: no filtering", rs(allowedConsentIds=["Advertising"], provider="oneTrust"), ADS, False),
    ("empty denied ids: no filtering", rs(deniedConsentIds=[], provider="custom"), ADS, False),
    ("denied ids only of other categories", rs(deniedConsentIds=["Other"], provider="oneTrust"), ADS, False),
    ("denied (and, default)", rs(deniedConsentIds=["Advertising"], provider="oneTrust"), ADS, True),
    ("empty strings are ignored", rs(deniedConsentIds=["", "Other"]), ADS, False),
    ("ids are case-sensitive", rs(deniedConsentIds=["advertising"]), ADS, False),
    (
        "and: one of two denied blocks",
        rs(deniedConsentIds=["Analytics"], provider="oneTrust", resolutionStrategy="and"),
        ADS_AND_ANALYTICS,
        True,
    ),
    (
        "or: one of two denied passes",
        rs(deniedConsentIds=["Analytics"], provider="oneTrust", resolutionStrategy="or"),
        ADS_AND_ANALYTICS,
        False,
    ),
    (
        "or: all denied blocks",
        rs(deniedConsentIds=["Analytics", "Advertising"], provider="ketch", resolutionStrategy="or"),
        ADS_AND_ANALYTICS,
        True,
    ),
    ("ketch without a strategy: or", rs(deniedConsentIds=["Analytics"], provider="ketch"), ADS_AND_ANALYTICS, False),
    ("no provider, no strategy: and", rs(deniedConsentIds=["Analytics"]), ADS_AND_ANALYTICS, True),
    (
        "unknown strategy falls back to and",
        rs(deniedConsentIds=["Analytics"], resolutionStrategy="xor"),
        ADS_AND_ANALYTICS,
        True,
    ),
    (
        "custom provider: the destination's strategy wins over the event's (or)",
        rs(deniedConsentIds=["Analytics"], provider="custom", resolutionStrategy="and"),
        ADS_AND_ANALYTICS_OR,
        False,
    ),
    (
        "custom provider: the destination's strategy wins over the event's (and)",
        rs(deniedConsentIds=["Analytics"], provider="custom", resolutionStrategy="or"),
        ADS_AND_ANALYTICS,
        True,
    ),
    (
        "allowed ids do not matter, only denied ones",
        rs(allowedConsentIds=[], deniedConsentIds=["Advertising"]),
        ADS,
        True,
    ),
]


@pytest.mark.parametrize(("case", "event", "needs", "blocked"), SEGMENT_CASES + RUDDERSTACK_CASES)
def test_consent_decision(case: str, event: dict[str, Any], needs: DestinationConsent, blocked: bool) -> None:
    detail = blocked_by(event, needs)
    assert (detail is not None) == blocked, case
    if detail is not None:
        assert any(c in detail for c in needs.categories), detail


def test_detail_names_the_missing_categories() -> None:
    detail = blocked_by(seg({"Advertising": True}), ADS_AND_ANALYTICS)
    assert detail == "no end-user consent for Analytics (context.consent.categoryPreferences)"
    detail = blocked_by(rs(deniedConsentIds=["Advertising"], provider="oneTrust"), ADS_AND_ANALYTICS)
    assert detail == "end user denied Advertising (context.consentManagement, strategy and)"


def test_both_shapes_on_one_event_each_can_block() -> None:
    event = seg({"Advertising": True})
    event["context"]["consentManagement"] = {"deniedConsentIds": ["Advertising"]}
    assert blocked_by(event, ADS) is not None


def test_unmapped_destinations_have_no_needs() -> None:
    config = parse({"categories": [{"id": "Advertising", "destinations": ["ads"]}], "strategies": {"ads": "or"}})
    assert compile_for(config, "warehouse") is None
    assert compile_for(config, "ads") == DestinationConsent(("Advertising",), "or")


def test_a_destination_in_several_categories_needs_them_in_declaration_order() -> None:
    config = parse(
        {
            "categories": [
                {"id": "Analytics", "destinations": ["ads", "stats"]},
                {"id": "Advertising", "name": "Ads", "destinations": ["ads"]},
            ]
        }
    )
    assert compile_for(config, "ads") == DestinationConsent(("Analytics", "Advertising"))
    assert to_body(config)["categories"][0] == {
        "id": "Analytics",
        "name": "Analytics",
        "destinations": ["ads", "stats"],
    }


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("Advertising", None),
        ("a" * 34, None),
        ("C0001", None),
        ("a" * 35, "at most 34"),
        ("1stParty", "must not start with a digit"),
        ("", "non-empty"),
        (" Ads", "spaces"),
        (12, "non-empty string"),
    ],
)
def test_category_ids_follow_segments_rules(value: Any, problem: str | None) -> None:
    found = category_id_problem(value)
    assert (found is None) if problem is None else (found is not None and problem in found)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"categories": [{"id": "9lives"}]}, "must not start with a digit"),
        ({"categories": [{"id": "A"}, {"id": "A"}]}, "declared twice"),
        ({"categories": [{"id": "A", "destinations": ["x", "x"]}]}, "destination twice"),
        ({"strategies": {"ads": "xor"}}, "'and' or 'or'"),
        ({"categories": [{"id": "A", "colour": "red"}]}, "unknown field `colour`"),
        ({"categories": "A"}, "Expected `array`"),
    ],
)
def test_invalid_configurations_say_what_is_wrong(body: Any, message: str) -> None:
    with pytest.raises(ConfigError, match="consent") as info:
        parse(body)
    assert message in str(info.value)


def test_empty_configuration_is_valid() -> None:
    assert parse({}) == ConsentConfig()

"""Plan tools: file formats (JSON, YAML, Segment's export), diff, infer from traffic, typegen."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from eventyard.errors import ConfigError
from eventyard.quality.plan_diff import diff_plans
from eventyard.quality.plan_format import Enforcement, dumps, loads, parse_plan
from eventyard.quality.plan_infer import infer_plan
from eventyard.quality.plan_typegen import generate, identifier, py_type
from eventyard.unify.plan_compile import CompiledPlan
from eventyard.unify.plan_enforce import SourcePlan, enforce

PLAN = parse_plan(
    {
        "name": "shop",
        "rules": [
            {
                "type": "TRACK",
                "key": "Order Completed",
                "version": 1,
                "jsonSchema": {
                    "description": "An order was paid.",
                    "type": "object",
                    "properties": {
                        "properties": {
                            "type": "object",
                            "required": ["order_id", "currency"],
                            "properties": {
                                "order_id": {"type": "string"},
                                "total": {"type": "number"},
                                "currency": {"type": "string", "enum": ["EUR", "USD"]},
                                "items": {"type": "array", "items": {"type": "object"}},
                                "coupon": {"type": ["string", "null"]},
                                "gift wrap": {"type": "boolean"},
                            },
                        }
                    },
                },
            },
            {
                "type": "TRACK",
                "key": "Order Completed",
                "version": 2,
                "jsonSchema": {
                    "type": "object",
                    "properties": {
                        "properties": {
                            "type": "object",
                            "required": ["order_id"],
                            "properties": {"order_id": {"type": "string"}, "revenue": {"type": "integer"}},
                        }
                    },
                },
            },
            {"type": "TRACK", "key": "signup-started", "version": 1, "jsonSchema": {}},
            {
                "type": "IDENTIFY",
                "jsonSchema": {
                    "type": "object",
                    "properties": {"traits": {"type": "object", "properties": {"email": {"type": "string"}}}},
                },
            },
        ],
    }
)


def test_json_and_yaml_round_trip() -> None:
    for fmt in ("json", "yaml"):
        assert loads(dumps(PLAN, fmt)) == PLAN
    assert loads(dumps(PLAN, "yaml"), name="renamed").name == "renamed"
    with pytest.raises(ConfigError, match="json or yaml"):
        dumps(PLAN, "xml")
    with pytest.raises(ConfigError, match="neither JSON nor YAML"):
        loads("a: [b", filename="x.yaml")


def test_segment_config_api_export_is_imported() -> None:
    exported = {
        "display_name": "Acme Web",
        "rules": {
            "global": {"type": "object", "properties": {"context": {"type": "object"}}},
            "events": [{"name": "Signed Up", "version": 1, "rules": {"type": "object"}}],
            "identify": {"type": "object", "properties": {"traits": {"type": "object"}}},
        },
    }
    plan = parse_plan(exported)
    assert plan.name == "Acme-Web"
    assert [(r.type, r.key) for r in plan.rules] == [("COMMON", ""), ("TRACK", "Signed Up"), ("IDENTIFY", "")]


@pytest.mark.parametrize(
    ("rules", "words"),
    [
        ([{"type": "TRACK", "key": "", "jsonSchema": {}}], "must name the track event"),
        ([{"type": "COMMON", "key": "x", "jsonSchema": {}}], "has no key"),
        ([{"type": "TRACK", "key": "a"}, {"type": "TRACK", "key": "a"}], "defined twice"),
        ([{"type": "TRACK", "key": "a", "version": 0}], "version must be 1 or more"),
        (
            [{"type": "TRACK", "key": "a", "jsonSchema": {"$schema": "http://json-schema.org/draft-04/schema#"}}],
            "draft-07",
        ),
        ([{"type": "COMMON"}, {"type": "COMMON", "version": 2}], "at most one COMMON"),
    ],
)
def test_plan_errors(rules: list[dict[str, Any]], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        parse_plan({"name": "p", "rules": rules})
    with pytest.raises(ConfigError, match="plan name"):
        parse_plan({"name": "no spaces allowed", "rules": []})


def test_diff_lists_rules_and_fields() -> None:
    newer = parse_plan(
        {
            **PLAN.to_json(),
            "rules": [r for r in PLAN.to_json()["rules"] if r["key"] != "signup-started"]
            + [{"type": "TRACK", "key": "Cart Viewed", "version": 1, "jsonSchema": {}}],
        }
    )
    text = [c.describe() for c in diff_plans(PLAN, newer)]
    assert text == ["+ TRACK 'Cart Viewed' v1", "- TRACK 'signup-started' v1"]
    assert all(c.change == "added" for c in diff_plans(None, PLAN))


def events() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(30):
        props: dict[str, Any] = {
            "order_id": f"o-{i}",
            "total": i * 1.5 if i % 2 else i,
            "currency": "EUR" if i % 3 else "USD",
        }
        if i % 2:
            props["coupon"] = f"C{i}"
        props["at"] = "2026-11-29T10:00:00Z"
        props["items"] = [{"sku": "a", "qty": 1}]
        out.append({"type": "track", "event": "Order Completed", "properties": props})
    out.append({"type": "identify", "traits": {"email": "a@b.c", "age": 3}})
    out.append({"type": "page", "name": "Home", "properties": {"path": "/"}})
    out.append({"type": "track", "event": "Violation Generated", "properties": {}})
    return out


def test_infer_drafts_types_required_fields_and_enums() -> None:
    plan = infer_plan("draft", events())
    assert [(r.type, r.key) for r in plan.rules] == [("IDENTIFY", ""), ("PAGE", ""), ("TRACK", "Order Completed")]
    track = plan.rule("TRACK", "Order Completed")
    assert track is not None
    props = track.jsonSchema["properties"]["properties"]
    assert props["required"] == ["at", "currency", "items", "order_id", "total"]
    fields = props["properties"]
    assert fields["total"] == {"type": "number"}, "integers and numbers seen together are numbers"
    assert fields["currency"] == {"type": "string", "enum": ["EUR", "USD"]}
    assert fields["order_id"] == {"type": "string"}, "many distinct values: no enum"
    assert fields["at"] == {"type": "string", "format": "date-time"}
    assert fields["items"]["items"]["properties"]["sku"] == {"type": "string"}
    # the traffic it was drafted from passes its own draft
    sp = SourcePlan("s", "s", "w", CompiledPlan(plan, 1), Enforcement(track_violations="block"))
    assert all(not enforce(sp, e).blocked for e in events())


def test_python_annotations() -> None:
    assert py_type({"type": "string", "enum": ["a", "b"]}) == "Literal['a', 'b']"
    assert py_type({"type": ["string", "null"]}) == "str | None"
    assert py_type({"type": "array", "items": {"type": "integer"}}) == "list[int]"
    assert py_type({}) == "Any"
    assert identifier("Order Completed", set()) == "order_completed"
    assert identifier("signup-started", set()) == "signup_started"
    assert identifier("3D View", set()) == "event_3d_view"
    assert identifier("orderCompleted", {"order_completed"}) == "order_completed_2"


def load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("tracking_generated", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def track(self, **kw: Any) -> None:
        self.calls.append(("track", kw))

    def identify(self, **kw: Any) -> None:
        self.calls.append(("identify", kw))


def test_generated_module_imports_and_calls_track(tmp_path: Path) -> None:
    path = tmp_path / "tracking.py"
    path.write_text(generate(PLAN, 7))
    module = load_module(path)
    assert (module.PLAN, module.PLAN_VERSION) == ("shop", 7)
    client = Recorder()
    module.order_completed({"order_id": "o-1", "currency": "EUR", "gift wrap": True}, user_id="u1", client=client)
    module.order_completed_v2({"order_id": "o-2", "revenue": 5}, anonymous_id="a1", client=client)
    module.identify({"email": "a@b.c"}, user_id="u1", client=client)
    (_, first), (_, second), (kind, third) = client.calls
    assert first["event"] == "Order Completed" and first["properties"]["gift wrap"] is True
    assert first["context"] is None
    assert second["context"] == {"protocols": {"event_version": 2}}
    assert (kind, third["traits"]) == ("identify", {"email": "a@b.c"})
    # what the functions send is valid under the plan
    sp = SourcePlan("s", "s", "w", CompiledPlan(PLAN, 7), Enforcement(track_violations="block"))
    for _, sent in client.calls[:2]:
        event = {
            "type": "track",
            "event": sent["event"],
            "properties": sent["properties"],
            "context": sent["context"] or {},
        }
        assert enforce(sp, event).violations == []
    assert "order_completed" in module.__all__ and "OrderCompletedProperties" in module.__all__


@pytest.mark.slow
def test_generated_module_type_checks_and_mypy_catches_misuse(tmp_path: Path) -> None:
    (tmp_path / "tracking.py").write_text(generate(PLAN, 1))
    (tmp_path / "use_ok.py").write_text(
        "from tracking import order_completed, identify\n"
        "order_completed({'order_id': 'o', 'currency': 'USD', 'coupon': None}, user_id='u')\n"
        "identify({'email': 'a@b.c'}, user_id='u')\n"
    )
    (tmp_path / "use_bad.py").write_text(
        "from tracking import order_completed\n"
        "order_completed({'order_id': 1, 'currency': 'GBP'}, user_id='u')\n"
        "order_completed({'currency': 'EUR'})\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "tracking.py", "use_ok.py", "use_bad.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    errors = [line for line in done.stdout.splitlines() if ": error:" in line]
    assert errors, done.stdout
    assert all(line.startswith("use_bad.py:") for line in errors), done.stdout
    assert any("use_bad.py:2" in line for line in errors) and any("use_bad.py:3" in line for line in errors)

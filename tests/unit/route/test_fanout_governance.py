"""Consent and PII through the real pipeline and fan-out: routing table from the state store,
unify stages, one job per destination, trace reasons, findings and the delivery overview."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from eventyard.log import topics
from eventyard.log.memory import MemoryEventLog
from eventyard.privacy.pii_classify import hash_value
from eventyard.quality.metrics import Metrics
from eventyard.quality.overview import destination_overview
from eventyard.route import jobs
from eventyard.route.fanout import Fanout
from eventyard.route.replay import replay
from eventyard.route.routing import RoutingTable
from eventyard.state.base import StateStore
from eventyard.state.sqlite import SQLiteStateStore
from eventyard.testing.wait import eventually_async
from eventyard.unify import pii
from eventyard.unify.context import StageContext
from eventyard.unify.pii import flush_findings
from eventyard.unify.runner import PipelineRunner


class World:
    def __init__(self, log: MemoryEventLog, state: StateStore, runner: PipelineRunner, metrics: Metrics) -> None:
        self.log, self.state, self.runner, self.metrics = log, state, runner, metrics
        self.ws = ""
        self.source = ""
        self.dest: dict[str, str] = {}

    async def send(self, *events: dict[str, Any]) -> None:
        await self.log.append(topics.INGEST, [(self.source, msgspec.json.encode(e)) for e in events])
        await self.runner.step()

    async def jobs_of(self, name: str) -> dict[str, dict[str, Any]]:
        out = {}
        for r in await self.log.read(topics.deliver(self.dest[name])):
            job = jobs.decode(r.payload)
            out[job.message_id] = job.event
        return out

    async def filtered(self, message_id: str) -> dict[str, tuple[str, str]]:
        names = {v: k for k, v in self.dest.items()}
        return {
            names[e.destination_id]: (e.reason, e.detail)
            for e in await self.log.trace(message_id)
            if e.step == "filtered"
        }

    async def dropped(self, message_id: str) -> list[tuple[str, str]]:
        return [(e.reason, e.detail) for e in await self.log.trace(message_id) if e.step == "dropped"]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    state = SQLiteStateStore(tmp_path / "state.sqlite3")
    await state.start()
    log = MemoryEventLog()
    metrics = Metrics()
    runner = PipelineRunner(log, StageContext(state), Fanout(RoutingTable(state), metrics), metrics, "test")
    w = World(log, state, runner, metrics)
    ws = await state.create_workspace("default")
    src = await state.create_source(ws.id, "web", write_key="wk-governance-1")
    w.ws, w.source = ws.id, src.id
    for name in ("ads", "stats", "warehouse"):
        d = await state.create_destination(ws.id, name, "webhook", settings={"url": "http://127.0.0.1:9/x"})
        await state.set_connection(src.id, d.id)
        w.dest[name] = d.id
    try:
        yield w
    finally:
        await state.close()


def track(mid: str, context: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    event = {"type": "track", "event": "Clicked", "userId": "u1", "messageId": mid, **kw}
    if context is not None:
        event["context"] = context
    return event


def prefs(**values: bool) -> dict[str, Any]:
    return {"consent": {"categoryPreferences": values}}


CATEGORIES = {
    "categories": [
        {"id": "Advertising", "name": "Advertising", "destinations": ["ads", "stats"]},
        {"id": "Analytics", "name": "Analytics", "destinations": ["stats"]},
    ],
    "strategies": {"stats": "or"},
}


async def test_consent_decides_per_destination_before_the_integrations_object(world: World) -> None:
    await world.state.put_document(world.ws, "consent", "categories", CATEGORIES)
    await world.send(
        track("none"),
        track("empty", prefs()),
        track("ads-only", prefs(Advertising=True)),
        track("both", prefs(Advertising=True, Analytics=True)),
        track("both-but-off", prefs(), integrations={"ads": False}),
        track("rs-denied", {"consentManagement": {"deniedConsentIds": ["Analytics"], "provider": "custom"}}),
        track(
            "rs-all-denied",
            {"consentManagement": {"deniedConsentIds": ["Analytics", "Advertising"], "provider": "custom"}},
        ),
    )
    assert sorted(await world.jobs_of("warehouse")) == sorted(
        ["none", "empty", "ads-only", "both", "both-but-off", "rs-denied", "rs-all-denied"]
    ), "an unmapped destination receives every event"
    assert sorted(await world.jobs_of("ads")) == ["ads-only", "both", "none", "rs-denied"]
    # stats needs Advertising and Analytics (Segment: both); custom provider strategy "or" (RudderStack)
    assert sorted(await world.jobs_of("stats")) == ["both", "none", "rs-denied"]
    assert await world.filtered("empty") == {
        "ads": ("consent", "no end-user consent for Advertising (context.consent.categoryPreferences)"),
        "stats": ("consent", "no end-user consent for Advertising, Analytics (context.consent.categoryPreferences)"),
    }
    assert (await world.filtered("both-but-off"))["ads"][0] == "consent", "consent is decided first"
    assert (await world.filtered("rs-all-denied"))["stats"] == (
        "consent",
        "end user denied Advertising, Analytics (context.consentManagement, strategy or)",
    )
    rendered = world.metrics.render().decode()
    assert 'reason="consent"' in rendered
    overview = {d["name"]: d for d in await destination_overview(world.log, world.state, 0)}
    assert overview["ads"]["totals"]["filtered"]["consent"] == 3
    assert overview["ads"]["filtered_labels"] == {"consent": "Filtered by end user consent"}


async def test_a_configuration_change_applies_to_the_next_batch(world: World) -> None:
    await world.send(track("before", prefs()))
    assert "before" in await world.jobs_of("ads")
    await world.state.put_document(world.ws, "consent", "categories", CATEGORIES)
    await world.send(track("after", prefs()))
    assert "after" not in await world.jobs_of("ads")


async def test_pii_hash_for_everyone_but_raw_for_the_warehouse_and_blocked_for_stats(world: World) -> None:
    rules = {
        "detect": True,
        "rules": [
            {
                "path": "properties.email",
                "kind": "email",
                "action": "hash",
                "destinations": {"warehouse": "allow", "stats": "block"},
            },
            {"kind": "card", "action": "block", "name": "no cards"},
            {"path": "context.ip", "action": "mask"},
        ],
    }
    await world.state.put_document(world.ws, "pii_rules", "rules", rules)
    await world.send(
        track("m1", {"ip": "203.0.113.9"}, properties={"email": "Ana@Example.com", "plan": "pro"}),
        track("m2", properties={"note": "4111 1111 1111 1111"}),
        track("m3", properties={"plan": "free"}),
    )
    hashed = hash_value("email", "ana@example.com")
    ads, wh, stats = await world.jobs_of("ads"), await world.jobs_of("warehouse"), await world.jobs_of("stats")
    assert ads["m1"]["properties"] == {"email": hashed, "plan": "pro"}
    assert ads["m1"]["context"]["ip"] == "203.0.113.0"
    assert wh["m1"]["properties"] == {"email": "Ana@Example.com", "plan": "pro"}
    assert wh["m1"]["context"]["ip"] == "203.0.113.0", "only the overridden field is restored"
    assert "m1" not in stats and "m3" in stats
    assert (await world.filtered("m1"))["stats"][0] == "pii_blocked"
    assert await world.dropped("m2") == [
        ("pii_blocked", "properties.note holds card and rule 'no cards' blocks such events")
    ]
    assert all("m2" not in j for j in (ads, wh, stats))
    await flush_findings(world.state)
    findings = {(f.path, f.kind): f.count for f in await world.state.list_pii_findings(world.ws)}
    assert findings == {("properties.email", "email"): 1, ("context.ip", "ip"): 1, ("properties.note", "card"): 1}
    assert 'reason="pii_blocked"' in world.metrics.render().decode()


async def test_consent_preference_events_become_a_profile_trait(world: World) -> None:
    await world.state.put_document(world.ws, "consent", "categories", CATEGORIES)
    await world.send(
        track("p1", prefs(Advertising=True), event="Segment Consent Preference Updated"),
        track("p2", {"consent": {}}, event="Segment Consent Preference Updated"),
        track("p3", event="Segment Consent Preference Updated"),
        {"type": "page", "name": "Segment Consent Preference Updated", "userId": "u1", "messageId": "p4"},
    )
    wh = await world.jobs_of("warehouse")
    assert wh["p1"]["context"]["traits"]["consent_preferences"] == {"Advertising": True, "Analytics": False}
    assert "p4" in wh, "only the track event is reserved"
    for mid in ("p2", "p3"):
        assert mid not in wh
        ((reason, detail),) = await world.dropped(mid)
        assert reason == "consent_preferences_missing" and "context.consent.categoryPreferences" in detail


async def test_findings_reach_the_state_store_in_the_background(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pii, "FLUSH_SECONDS", 0.0)
    await world.state.put_document(world.ws, "pii_rules", "rules", {"detect": True})
    await world.send(track("f1", properties={"email": "ana@example.com"}), track("f2", properties={"email": "bo@x.io"}))
    rows = await eventually_async(lambda: world.state.list_pii_findings(world.ws), lambda found: bool(found), within=10)
    assert [(r.path, r.kind, r.count) for r in rows] == [("properties.email", "email", 2)]
    assert pii.findings_of(world.state).pending == {}


async def test_replays_follow_the_pii_rules_and_consent(world: World) -> None:
    await world.send(
        track("r1", properties={"email": "Ana@Example.com"}),
        track("r2", properties={"card": "4111 1111 1111 1111"}),
        track("r3", prefs()),
    )
    await world.state.put_document(
        world.ws,
        "pii_rules",
        "rules",
        {"rules": [{"path": "properties.email", "action": "hash"}, {"kind": "card", "action": "block"}]},
    )
    await world.state.put_document(world.ws, "consent", "categories", CATEGORIES)
    before = len(await world.log.read(topics.deliver(world.dest["ads"])))
    result = await replay(world.log, world.runner.fanout, world.dest["ads"], 0, 2**40)  # type: ignore[arg-type]
    assert (result.read, result.queued, result.filtered) == (3, 1, 2)
    (job,) = [jobs.decode(r.payload) for r in (await world.log.read(topics.deliver(world.dest["ads"])))[before:]]
    assert (job.message_id, job.origin) == ("r1", "replayed")
    assert job.event["properties"]["email"] == hash_value("email", "ana@example.com")

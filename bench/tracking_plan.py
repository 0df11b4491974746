"""What a tracking plan costs the pipeline, in-process, against no plan in the same run.

    .venv/bin/python bench/tracking_plan.py                # 200,000 events, 3 alternating rounds
    .venv/bin/python bench/tracking_plan.py --events 50000 --rounds 2

* **Plan** (deterministic): 50 track events ``Event 00`` ... ``Event 49``, each with 8
  properties (string, number, integer, boolean, string enum, date-time string, array of
  strings, nested object), 3 of them required; a COMMON rule on ``context.locale``.
* **Events** (seed ``--seed``): normalized track events of those 50 names, about 1 KB each
  with an analytics.js-like context, in batches of 1,000; ``--invalid`` of them (default 5 %)
  carry a wrong type, and as many an unplanned property.
* **Measured** in CPU time of the process, single task, alternating rounds (none, plan, plan, none, ...):
  1. the tracking-plan stage alone: no plan attached vs a plan with ``track_violations:
     omit`` and ``track_unplanned_properties: omit`` (every event validated, violations
     counted into the state store once per batch);
  2. the whole unify pipeline (dedupe, suppression, tracking plan and the other stages, with
     a SQLite state store and no identity service) without and with the plan.

Prints events per CPU second of each (process CPU time, all threads) and the ratio
plan / none. The state store is SQLite in a temporary directory (the embedded default).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from eventyard.quality import plan_store
from eventyard.quality.plan_format import TrackingPlan, parse_plan
from eventyard.spec.pipeline import PipelineEvent
from eventyard.state.sqlite import SQLiteStateStore
from eventyard.unify import tracking_plan
from eventyard.unify.context import StageContext
from eventyard.unify.pipeline import run_pipeline

sys.path.insert(0, str(Path(__file__).parent))
from ingest import busy_cpus

NAMES = [f"Event {i:02d}" for i in range(50)]


def make_plan() -> TrackingPlan:
    rules: list[dict[str, Any]] = [
        {
            "type": "COMMON",
            "jsonSchema": {
                "type": "object",
                "properties": {"context": {"type": "object", "properties": {"locale": {"type": "string"}}}},
            },
        }
    ]
    for name in NAMES:
        props = {
            "id": {"type": "string"},
            "amount": {"type": "number", "minimum": 0},
            "count": {"type": "integer"},
            "flag": {"type": "boolean"},
            "plan": {"type": "string", "enum": ["free", "pro", "team"]},
            "at": {"type": "string", "format": "date-time"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "meta": {"type": "object", "properties": {"source": {"type": "string"}}},
        }
        schema = {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {"properties": {"type": "object", "required": ["id", "amount", "plan"], "properties": props}},
        }
        rules.append({"type": "TRACK", "key": name, "version": 1, "jsonSchema": schema})
    return parse_plan({"name": "bench", "rules": rules})


def make_events(n: int, seed: int, invalid: float) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        props: dict[str, Any] = {
            "id": f"id-{rng.randrange(10**9)}",
            "amount": round(rng.uniform(0, 500), 2),
            "count": rng.randrange(100),
            "flag": rng.random() < 0.5,
            "plan": rng.choice(["free", "pro", "team"]),
            "at": "2026-11-29T10:00:00.000Z",
            "tags": ["a", "b"],
            "meta": {"source": "web"},
        }
        roll = rng.random()
        if roll < invalid:
            props["amount"] = "lots"
        elif roll < 2 * invalid:
            props["unplanned"] = 1
        out.append(
            {
                "type": "track",
                "event": rng.choice(NAMES),
                "userId": f"u{rng.randrange(100000)}",
                "anonymousId": f"a-{rng.randrange(10**9)}",
                "messageId": f"m-{seed}-{i}",
                "properties": props,
                "context": {
                    "locale": "en-US",
                    "library": {"name": "analytics.js", "version": "5.2.0"},
                    "page": {"path": "/p", "url": "https://example.com/p", "title": "P", "referrer": ""},
                    "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)",
                    "timezone": "Europe/Berlin",
                },
                "integrations": {},
                "timestamp": "2026-11-29T10:00:00.000Z",
                "receivedAt": "2026-11-29T10:00:00.100Z",
                "sentAt": "2026-11-29T10:00:00.050Z",
            }
        )
    return out


def batches(events: list[dict[str, Any]], source_id: str, base: int) -> list[list[PipelineEvent]]:
    out = []
    for start in range(0, len(events), 1000):
        chunk = events[start : start + 1000]
        out.append(
            [
                PipelineEvent(
                    base + start + i,
                    source_id,
                    f"{e['messageId']}-{base}",  # new ids each pass, or dedupe would drop them all
                    {**e, "messageId": f"{e['messageId']}-{base}", "properties": dict(e["properties"])},
                    0.0,
                )
                for i, e in enumerate(chunk)
            ]
        )
    return out


async def timed(stage: Any, ctx: StageContext, groups: list[list[PipelineEvent]]) -> float:
    """CPU seconds of this process (all threads: the state store works on one) for the groups.

    CPU time rather than wall clock: the machine is shared, and a busy neighbour stretches
    wall-clock time of both variants by whatever it happens to take at the moment."""
    start = time.process_time()
    for group in groups:
        await stage(group, ctx)
    return time.process_time() - start


async def main(args: argparse.Namespace) -> None:
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs; busy CPUs before start: {busy_cpus()}")
    with tempfile.TemporaryDirectory() as tmp:
        state = SQLiteStateStore(Path(tmp) / "state.sqlite3")
        await state.start()
        try:
            ws = await state.create_workspace("bench")
            plain = await state.create_source(ws.id, "plain")
            governed = await state.create_source(ws.id, "governed")
            await plan_store.put_plan(state, ws.id, make_plan())
            await plan_store.attach(
                state,
                governed,
                {"plan": "bench", "enforcement": {"track_violations": "omit", "track_unplanned_properties": "omit"}},
            )
            events = make_events(args.events, args.seed, args.invalid)
            ctx = StageContext(state)
            results: dict[str, list[float]] = {
                k: [] for k in ("stage none", "stage plan", "pipeline none", "pipeline plan")
            }
            base = 1
            # The first batches compile the plan (and field validators on first violations).
            cold = await timed(tracking_plan.run, ctx, batches(events[:10_000], governed.id, base))
            base += 10_001
            print(f"cold start: first 10,000 events with the plan took {cold:.2f} s (compiling included)")
            for round_ in range(args.rounds):
                order = [("none", plain.id), ("plan", governed.id)]
                if round_ % 2:
                    order.reverse()
                for label, source_id in order:
                    groups = batches(events, source_id, base)
                    base += len(events) + 1
                    results[f"stage {label}"].append(len(events) / await timed(tracking_plan.run, ctx, groups))
                for label, source_id in order:
                    groups = batches(events, source_id, base)
                    base += len(events) + 1
                    results[f"pipeline {label}"].append(len(events) / await timed(run_pipeline, ctx, groups))
            for key, values in results.items():
                print(f"{key:14s} events/s: " + ", ".join(f"{v:,.0f}" for v in values) + f"  (best {max(values):,.0f})")
            for part in ("stage", "pipeline"):
                none, plan = max(results[f"{part} none"]), max(results[f"{part} plan"])
                costs = f"µs per event: none {1e6 / none:.1f}, plan {1e6 / plan:.1f}"
                print(f"{part}: plan / none = {plan / none:.2f}  ({costs})")
        finally:
            await state.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument("--invalid", type=float, default=0.05, help="share of events with a violation")
    asyncio.run(main(parser.parse_args()))

"""Governance benchmark: pipeline throughput with a 50-event tracking plan, consent and PII
rules on, against everything off, in the same run.

    .venv/bin/python bench/governance.py [--events 20000] [--rounds 3] [--no-identity]

For each round and each mode (``off``, then ``on``; rounds alternate so background load hits
both alike), in a fresh data directory:

1. the components of ``eventyard serve`` are built (SQLite log and state store, identity
   store) without the pipeline and delivery tasks; ``eventyard apply`` of a workspace with one
   source and three webhook destinations (``ads`` in consent category Advertising, ``stats``
   in Analytics, ``warehouse`` in none); in mode ``on`` also a 50-event tracking plan
   attached to the source (every check on, nothing blocked), the consent categories, and PII
   rules (``detect: true``; hash emails with a raw override for the warehouse, mask IPs, hash
   phones, block card numbers);
2. ``--events`` seeded browser-SDK events (the ingest benchmark's generator, 600-900 bytes,
   each with a consent object that consents to both categories, so both modes deliver the
   same events) are stored through the tracking API in-process, 100 per request;
3. the configuration is compiled (routing table, tracking-plan validators, privacy rules: once
   per configuration change in a server), then the timed part: the pipeline runner (every
   unify stage, fan-out, one log commit per batch) turns the stored events into delivery jobs,
   one batch after another, until none is left.

It prints events/s per mode and round, the median of each mode, and the ratio on/off; the
target of issue 6 is that governance costs at most 25 % (ratio >= 0.75). Nothing leaves the
machine: the destinations are never called (no delivery role).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from eventyard.control import workspace_apply  # noqa: E402
from eventyard.control.workspace_file import parse  # noqa: E402
from eventyard.log import topics  # noqa: E402
from eventyard.privacy import config as privacy_config  # noqa: E402
from eventyard.runtime.components import build  # noqa: E402
from eventyard.runtime.settings import Settings  # noqa: E402
from eventyard.testing.asgi import call  # noqa: E402
from eventyard.unify import pipeline  # noqa: E402
from eventyard.unify.context import StageContext  # noqa: E402
from eventyard.unify.pii import flush_findings  # noqa: E402
from eventyard.unify.runner import PipelineRunner  # noqa: E402
from ingest import TRACK_NAMES, EventGenerator, busy_cpus  # noqa: E402
from route_common import machine  # noqa: E402

T = TypeVar("T")
SEED = 20261129
WRITE_KEY = "bench-governance-key"
TARGET_RATIO = 0.75

BASE = f"""\
workspaces:
  - name: default
    sources:
      - name: web
        write_key: {WRITE_KEY}
__ATTACH__
    destinations:
      - {{name: ads, type: webhook, settings: {{url: "http://127.0.0.1:9/ads"}}}}
      - {{name: stats, type: webhook, settings: {{url: "http://127.0.0.1:9/stats"}}}}
      - {{name: warehouse, type: webhook, settings: {{url: "http://127.0.0.1:9/wh"}}}}
    connections:
      - {{source: web, destination: ads}}
      - {{source: web, destination: stats}}
      - {{source: web, destination: warehouse}}
"""

GOVERNANCE = """\
    consent:
      categories:
        - {id: Advertising, name: Advertising, destinations: [ads]}
        - {id: Analytics, name: Analytics, destinations: [stats]}
    pii:
      detect: true
      rules:
        - {path: traits.email, kind: email, action: hash, destinations: {warehouse: allow}}
        - {path: context.ip, action: mask}
        - {kind: phone, action: hash}
        - {kind: email, action: hash, destinations: {warehouse: allow}}
        - {kind: card, action: block}
"""

ATTACH = """\
        tracking_plan:
          plan: shop
          enforcement: {track_unplanned_properties: allow, track_violations: allow, identify_violations: allow}
"""

PRODUCT = {
    "type": "object",
    "properties": {
        "product_id": {"type": "string"},
        "sku": {"type": "string"},
        "category": {"type": "string"},
        "name": {"type": "string"},
        "price": {"type": "number"},
        "quantity": {"type": "integer", "minimum": 1},
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
    },
    "required": ["product_id", "price"],
}
SCHEMAS: dict[str, dict[str, Any]] = {
    "Product Viewed": PRODUCT,
    "Product Added": PRODUCT,
    "Order Completed": {
        "type": "object",
        "properties": {
            "order_id": {"type": "string"},
            "revenue": {"type": "number"},
            "currency": {"type": "string"},
            "products": {
                "type": "array",
                "items": {"type": "object", "properties": {"product_id": {"type": "string"}}},
            },
        },
        "required": ["order_id", "revenue"],
    },
    "Button Clicked": {
        "type": "object",
        "properties": {"button_id": {"type": "string"}, "label": {"type": "string"}},
        "required": ["button_id"],
    },
    "Signed Up": {
        "type": "object",
        "properties": {"plan": {"type": "string"}, "method": {"type": "string", "enum": ["email", "google", "github"]}},
    },
}


def tracking_plan() -> dict[str, Any]:
    """50 TRACK rules (the generator's 5 events and 45 more), an IDENTIFY and a PAGE rule."""
    rules = []
    names = list(TRACK_NAMES) + [f"Feature {i:02d} Used" for i in range(50 - len(TRACK_NAMES))]
    for name in names:
        props = SCHEMAS.get(name, {"type": "object", "properties": {"feature": {"type": "string"}}})
        rules.append(
            {
                "type": "TRACK",
                "key": name,
                "version": 1,
                "jsonSchema": {"type": "object", "properties": {"properties": props}, "required": ["properties"]},
            }
        )
    traits = {
        "type": "object",
        "properties": {
            "email": {"type": "string", "format": "email"},
            "firstName": {"type": "string"},
            "lastName": {"type": "string"},
            "logins": {"type": "integer"},
        },
    }
    rules.append(
        {
            "type": "IDENTIFY",
            "key": "",
            "version": 1,
            "jsonSchema": {"type": "object", "properties": {"traits": traits}},
        }
    )
    rules.append(
        {
            "type": "PAGE",
            "key": "",
            "version": 1,
            "jsonSchema": {"type": "object", "properties": {"properties": {"type": "object"}}},
        }
    )
    assert sum(1 for r in rules if r["type"] == "TRACK") == 50
    return {"name": "shop", "rules": rules}


def workspace(mode: str) -> str:
    if mode == "off":
        return BASE.replace("__ATTACH__\n", "")
    text = BASE.replace("__ATTACH__\n", ATTACH) + GOVERNANCE
    plan = json.dumps([tracking_plan()])
    return text.replace("    sources:\n", f"    tracking_plans: {plan}\n    sources:\n", 1)


def bodies(n: int, per_request: int = 100) -> list[bytes]:
    gen = EventGenerator(SEED)
    consent = {"categoryPreferences": {"Advertising": True, "Analytics": True}}
    out = []
    for start in range(0, n, per_request):
        events = [gen.sized_event() for _ in range(min(per_request, n - start))]
        for e in events:
            e["context"]["consent"] = consent
            e.pop("sentAt", None)
        out.append(json.dumps({"batch": events}, separators=(",", ":")).encode())
    return out


async def one_run(mode: str, requests: list[bytes], n: int, identity: bool, root: Path) -> dict[str, Any]:
    data = Path(tempfile.mkdtemp(prefix=f"gov-{mode}-", dir=root))
    settings = Settings(data_dir=str(data), roles=("collect", "control"))
    components = build(settings)
    await components.start()
    try:
        await workspace_apply.apply(components.state, parse(workspace(mode), "bench.yaml"))
        await components.sources.reload()
        auth = {"Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()}
        for body in requests:
            resp = await call(
                components_app(components), "POST", "/v1/batch", body, auth | {"Content-Type": "application/json"}
            )
            if resp.status != 200:
                raise RuntimeError(f"ingest failed: {resp.status} {resp.body[:200]!r}")
        ctx = StageContext(components.state, identity=components.identity if identity else None)
        ctx.suppressions = getattr(components, "suppressions", None)
        # Compile the configuration (routing table, tracking plan validators, privacy rules) before
        # timing: it happens once per configuration change, not per event.
        await components.routing.current()
        await ctx.tracking_plans.current(components.state)
        await privacy_config.snapshot(components.state)
        stage_times: dict[str, float] = {}
        fanout = timed("fan-out", components.fanout, stage_times)
        runner = PipelineRunner(components.log, ctx, fanout, components.metrics, "bench", batch_events=1000)
        saved = list(pipeline.STAGES)
        pipeline.STAGES[:] = [(name, timed(name, stage, stage_times)) for name, stage in saved]
        try:
            start, cpu0 = time.perf_counter(), time.process_time()
            while await runner.step():
                pass
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu0
        finally:
            pipeline.STAGES[:] = saved
        await flush_findings(components.state)  # the PII report's counts (written in the background)
        jobs = {name: (await components.log.stats(topics.deliver(d.id))).ready for name, d in await dests(components)}
        if any(count != n for count in jobs.values()):
            raise RuntimeError(f"mode {mode}: not every event became a job ({jobs}); see the log above")
        dropped: dict[str, int] = {}
        for c in await components.log.trace_counts(0, 10**9):
            if c.step in ("dropped", "filtered"):
                dropped[c.reason] = dropped.get(c.reason, 0) + c.count
        return {
            "mode": mode,
            "events": n,
            "seconds": elapsed,
            "events_per_s": n / elapsed,
            "events_per_cpu_s": n / cpu,
            "stage_us": {k: v / n * 1e6 for k, v in stage_times.items()},
            "jobs": jobs,
            "dropped": dropped,
        }
    finally:
        await components.close()


def timed(name: str, fn: Callable[..., Awaitable[T]], into: dict[str, float]) -> Callable[..., Awaitable[T]]:
    """``fn`` that adds its wall time to ``into[name]`` and the CPU time of the event loop's thread
    to ``into[name + " cpu"]`` (stages and fan-out run one at a time; waits for the state store's
    and the log's threads count in the wall time only)."""

    async def run(*args: Any) -> T:
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            return await fn(*args)
        finally:
            into[name] = into.get(name, 0.0) + time.perf_counter() - t0
            into[name + " cpu"] = into.get(name + " cpu", 0.0) + time.thread_time() - c0

    return run


_APPS: dict[int, Any] = {}


def components_app(components: Any) -> Any:
    from eventyard.runtime.app import create_app

    app = _APPS.get(id(components))
    if app is None:
        app = _APPS[id(components)] = create_app(components.settings, components)
    return app


async def dests(components: Any) -> list[tuple[str, Any]]:
    return [(d.name, d) for d in await components.state.list_destinations()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-identity", action="store_true", help="Run without the identity and profile stages.")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    busy = busy_cpus()
    print(f"background load before the run: {busy:.2f} CPUs busy" if busy is not None else "background load unknown")
    requests = bodies(args.events)
    results: dict[str, list[float]] = {"off": [], "on": []}
    cpu_results: dict[str, list[float]] = {"off": [], "on": []}
    stages: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory(prefix="eventyard-bench-governance-") as tmp:
        for r in range(args.rounds):
            for mode in ("off", "on"):
                res = asyncio.run(one_run(mode, requests, args.events, not args.no_identity, Path(tmp)))
                results[mode].append(res["events_per_s"])
                cpu_results[mode].append(res["events_per_cpu_s"])
                stages[mode].append(res["stage_us"])
                print(
                    f"round {r + 1} {mode:>3}: {res['events_per_s']:>8,.0f} events/s, "
                    f"{res['events_per_cpu_s']:>8,.0f} events per CPU-second "
                    f"({res['seconds']:.2f} s; jobs {res['jobs']}; dropped/filtered {res['dropped'] or 'none'})",
                    flush=True,
                )
    busy_after = busy_cpus()
    for mode in ("off", "on"):
        names = stages[mode][0].keys()
        per = {k: statistics.median(st[k] for st in stages[mode]) for k in names}
        print(f"{mode:>3} median µs per event by stage: " + ", ".join(f"{k} {v:.1f}" for k, v in per.items()))
    off, on = statistics.median(results["off"]), statistics.median(results["on"])
    cpu_off, cpu_on = statistics.median(cpu_results["off"]), statistics.median(cpu_results["on"])
    ratio, cpu_ratio = on / off, cpu_on / cpu_off
    print(f"median off: {off:,.0f} events/s   median on: {on:,.0f} events/s   ratio on/off {ratio:.3f}")
    print(
        f"per CPU-second: off {cpu_off:,.0f}, on {cpu_on:,.0f}, ratio on/off {cpu_ratio:.3f} "
        "(CPU time of this process: less sensitive to other processes on a shared machine)"
    )
    print(
        f"governance costs {100 * (1 - ratio):.1f} % of throughput ({100 * (1 - cpu_ratio):.1f} % of CPU); "
        f"target <= 25 %: {'met' if ratio >= TARGET_RATIO else 'NOT met'}"
    )
    if busy_after is not None:
        print(f"background load after the run: {busy_after:.2f} CPUs busy")
    return 0 if ratio >= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())

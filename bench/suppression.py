"""Suppression benchmark: what the suppression list costs the collector, in the same run.

    .venv/bin/python bench/suppression.py [--batches 300] [--rounds 3] [--suppressed 10000]

The collector (tracking API in-process, ``collect`` role, SQLite log at ``synchronous=FULL``)
stores 100-event batches of the ingest benchmark's seeded browser-SDK events, in three modes,
in alternating rounds (so background load hits all alike), each in a fresh data directory:

* ``off``: no suppression in the workspace (the collector's normal path);
* ``on``: ``--suppressed`` user ids suppressed, none of them among the senders (every event's
  head is checked against the set and passes);
* ``on+hits``: the same plus 5 of the generator's 500 users suppressed (about 1 % of the
  events are refused as ``suppressed``; their refusals are written to the ``rejected`` topic).

It prints events/s per mode and round, the medians and the ratios against ``off``. Then two
CPU-only measurements that background load disturbs less: the collector's check of a request
(``Ingestor.build_batch``: the per-event validation and, with a list, the suppression check;
no I/O) over the same batches in the three modes, best of 5 alternating repetitions; and the
unify stage ``suppression`` alone: events/s over 100,000 pipeline events with and without a
list of ``--suppressed`` ids.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from eventyard.privacy.regulations import create_regulation  # noqa: E402
from eventyard.privacy.suppression import SuppressionList  # noqa: E402
from eventyard.runtime.app import create_app  # noqa: E402
from eventyard.runtime.components import build  # noqa: E402
from eventyard.runtime.settings import Settings  # noqa: E402
from eventyard.spec.pipeline import PipelineEvent  # noqa: E402
from eventyard.state.sqlite import SQLiteStateStore  # noqa: E402
from eventyard.testing.asgi import call  # noqa: E402
from eventyard.unify import suppression as stage  # noqa: E402
from eventyard.unify.context import StageContext  # noqa: E402
from ingest import EventGenerator  # noqa: E402

MODES = ("off", "on", "on+hits")
WRITE_KEY = "wk-bench-suppression"


def batches(n: int, seed: int) -> tuple[list[dict[str, Any]], list[str]]:
    gen = EventGenerator(seed)
    bodies = [gen.batch(100) for _ in range(n)]
    users = [u["userId"] for u in gen.users if u["userId"]]
    return bodies, users


async def run_mode(mode: str, bodies: list[dict[str, Any]], users: list[str], suppressed: int) -> tuple[float, int]:
    with tempfile.TemporaryDirectory(prefix="eventyard-bench-") as tmp:
        settings = Settings(data_dir=tmp, roles=("collect",), admin_rate_limit_per_second=0)
        components = build(settings)
        app = create_app(settings, components)
        await components.start()
        try:
            ws = await components.state.create_workspace("bench")
            await components.state.create_source(ws.id, "web", write_key=WRITE_KEY)
            await components.sources.reload()
            if mode != "off":
                ids = [f"nobody-{i}" for i in range(suppressed)]
                for start in range(0, len(ids), 5000):
                    chunk = ids[start : start + 5000]
                    await create_regulation(components.state, ws.id, "SUPPRESS_ONLY", "USER_ID", chunk)
            if mode == "on+hits":
                await create_regulation(components.state, ws.id, "SUPPRESS_ONLY", "USER_ID", users[:5])
            assert components.suppressions is not None
            await components.suppressions.reload()
            auth = {"Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()}
            accepted = 0

            async def worker(chunk: list[dict[str, Any]]) -> int:
                n = 0
                for body in chunk:
                    resp = await call(app, "POST", "/v1/batch", body, auth)
                    n += resp.json()["accepted"]
                return n

            lanes = 16
            started = time.perf_counter()
            results = await asyncio.gather(*(worker(bodies[i::lanes]) for i in range(lanes)))
            elapsed = time.perf_counter() - started
            accepted = sum(results)
        finally:
            await components.close()
    return len(bodies) * 100 / elapsed, accepted


async def stage_rate(suppressed: int, tmp: Path) -> tuple[float, float]:
    state = SQLiteStateStore(tmp / "state.sqlite3")
    await state.start()
    try:
        ws = await state.create_workspace("bench")
        source = await state.create_source(ws.id, "web", write_key=WRITE_KEY)
        events = [
            PipelineEvent(i, source.id, f"m{i}", {"type": "track", "userId": f"user-{i % 500}"}, 0.0)
            for i in range(100_000)
        ]
        rates = []
        for with_list in (False, True):
            ctx = StageContext(state)
            if with_list:
                ids = [f"nobody-{i}" for i in range(suppressed)]
                for start in range(0, len(ids), 5000):
                    await create_regulation(state, ws.id, "SUPPRESS_ONLY", "USER_ID", ids[start : start + 5000])
                ctx.suppressions = SuppressionList(state)
                await ctx.suppressions.reload()
            started = time.perf_counter()
            for start in range(0, len(events), 500):
                await stage.run(events[start : start + 500], ctx)
            rates.append(len(events) / (time.perf_counter() - started))
        return rates[0], rates[1]
    finally:
        await state.close()


async def build_rates(bodies: list[dict[str, Any]], users: list[str], suppressed: int, tmp: Path) -> dict[str, float]:
    """Events/s of ``Ingestor.build_batch`` (CPU only) per mode, best of 5 alternating repetitions."""
    import msgspec

    from eventyard.collect.ingest import Ingestor, decode_batch
    from eventyard.log.memory import MemoryEventLog
    from eventyard.quality.metrics import Metrics
    from eventyard.spec import timestamps
    from eventyard.spec.normalize import Envelope

    state = SQLiteStateStore(tmp / "build-state.sqlite3")
    await state.start()
    try:
        ws = await state.create_workspace("bench")
        source = await state.create_source(ws.id, "web", write_key=WRITE_KEY)
        lists: dict[str, SuppressionList | None] = {"off": None}
        ids = [f"nobody-{i}" for i in range(suppressed)]
        for start in range(0, len(ids), 5000):
            await create_regulation(state, ws.id, "SUPPRESS_ONLY", "USER_ID", ids[start : start + 5000])
        lists["on"] = SuppressionList(state)
        await lists["on"].reload()
        await create_regulation(state, ws.id, "SUPPRESS_ONLY", "USER_ID", users[:5])
        lists["on+hits"] = SuppressionList(state)
        await lists["on+hits"].reload()
    finally:
        await state.close()
    decoded = [decode_batch(msgspec.json.encode(b)) for b in bodies]
    best: dict[str, float] = dict.fromkeys(MODES, 0.0)
    for rep in range(5):
        for mode in MODES if rep % 2 == 0 else tuple(reversed(MODES)):
            ingestor = Ingestor(MemoryEventLog(), Metrics(), lists[mode])
            started = time.perf_counter()
            for batch in decoded:
                received, received_at = timestamps.now_stamped()
                ingestor.build_batch(batch, source, Envelope(received=received, received_at=received_at))
            best[mode] = max(best[mode], len(decoded) * 100 / (time.perf_counter() - started))
    return best


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=300, help="100-event batches per mode and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--suppressed", type=int, default=10_000, help="suppressed ids that never send")
    parser.add_argument("--seed", type=int, default=20260504)
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    bodies, users = batches(args.batches, args.seed)
    rates: dict[str, list[float]] = {m: [] for m in MODES}
    for r in range(args.rounds):
        order = MODES if r % 2 == 0 else tuple(reversed(MODES))
        for mode in order:
            rate, accepted = await run_mode(mode, bodies, users, args.suppressed)
            rates[mode].append(rate)
            print(f"round {r + 1} {mode:8s} {rate:>10,.0f} events/s  ({accepted:,} of {len(bodies) * 100:,} stored)")
    base = statistics.median(rates["off"])
    print("\ncollector, 100-event batches (median of rounds):")
    for mode in MODES:
        median = statistics.median(rates[mode])
        print(f"  {mode:8s} {median:>10,.0f} events/s   ratio {median / base:.3f}")
    with tempfile.TemporaryDirectory(prefix="eventyard-bench-") as tmp:
        built = await build_rates(bodies, users, args.suppressed, Path(tmp))
        without, with_list = await stage_rate(args.suppressed, Path(tmp))
    print("\ncollector's request check alone (Ingestor.build_batch, CPU only, best of 5):")
    for mode in MODES:
        print(f"  {mode:8s} {built[mode]:>10,.0f} events/s   ratio {built[mode] / built['off']:.3f}")
    print("\nunify stage `suppression`, 100,000 events in batches of 500:")
    print(f"  no list          {without:>12,.0f} events/s")
    print(f"  {args.suppressed:,} suppressed {with_list:>12,.0f} events/s")


if __name__ == "__main__":
    asyncio.run(main())

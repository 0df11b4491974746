"""Scale-out benchmark: the split deployment (NATS JetStream + PostgreSQL) against the embedded
default (SQLite), and one against two processes per role, in one run with the same load.

    .venv/bin/python bench/scaleout.py [--events 20000] [--per-request 100] [--concurrency 8]

Three deployments, each fresh, each loaded with the same ``--events`` events (the seeded
generator of ``bench/ingest.py``, ``--per-request`` events per ``/v1/batch`` request,
``--concurrency`` requests in flight, spread over the collect processes) while it delivers to
one webhook sink process (``batch: true``, 100 events per request):

1. **embedded**: one ``eventyard serve`` with every role, SQLite log and state (the baseline);
2. **split ×1**: one collect, one unify and one route process on NATS + PostgreSQL;
3. **split ×2**: two processes of each role.

For each: ingest events/s (accepted by collect), end-to-end events/s (events / (last delivery
at the sink - first send)), server CPU seconds per 1,000 events (all eventyard processes;
NATS and PostgreSQL are not counted), and the ratios split/embedded and ×2/×1. Every event
is checked to arrive at least once. Needs nats-server with JetStream at 127.0.0.1:4222 (or
``EVENTYARD_TEST_NATS``) and PostgreSQL at 127.0.0.1:5432 (``EVENTYARD_TEST_POSTGRES``);
only loopback is contacted and every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from eventyard.testing.deployment import Deployment
from eventyard.testing.scaleout import nats_available, nats_url, postgres_available, postgres_database
from eventyard.testing.server import WRITE_KEY, ServerProcess, free_port
from ingest import report_background_load
from route_common import Feed, Sink, basic_auth, blast, cpu_seconds, machine, wait_until, webhook_workspace


@dataclass
class Result:
    name: str
    processes: int
    ingest_eps: float
    end_to_end_eps: float
    cpu_ms_per_1000: float
    delivered: int
    failed_requests: int
    #: CPU ms per 1,000 events of each role's processes together.
    role_cpu: dict[str, float]


def load(feed: Feed, urls: list[str], events: int, per_request: int, concurrency: int) -> tuple[float, int, float]:
    """Send ``events`` spread over ``urls``; returns (first send time, failed requests, ingest seconds)."""
    headers = {"Authorization": basic_auth(WRITE_KEY), "Content-Type": "application/json"}
    share = events // len(urls)

    async def run() -> tuple[int, float]:
        t0 = time.perf_counter()
        results = await asyncio.gather(
            *(
                blast(
                    url + "/v1/batch",
                    lambda seq, n: feed.batch_body(seq, n),
                    headers,
                    events=share,
                    per_request=per_request,
                    concurrency=max(1, concurrency // len(urls)),
                    first_seq=i * share,
                    seconds_limit=600,
                )
                for i, url in enumerate(urls)
            )
        )
        return sum(r.requests_failed for r in results), time.perf_counter() - t0

    start = time.time()
    failed, seconds = asyncio.run(run())
    return start, failed, seconds


def measure(
    name: str, urls: list[str], groups: dict[str, list[int]], sink: Sink, feed: Feed, args: argparse.Namespace
) -> Result:
    sink.reset()
    events = (args.events // len(urls)) * len(urls)
    pids = [p for group in groups.values() for p in group]
    before = {role: sum(cpu_seconds(p) for p in group) for role, group in groups.items()}
    cpu0 = sum(before.values())
    start, failed, ingest_seconds = load(feed, urls, events, args.per_request, args.concurrency)
    arrived = wait_until(lambda: sink.stats().events >= events, seconds=args.timeout, every=0.25)
    stats = sink.stats()
    role_cpu = {
        role: (sum(cpu_seconds(p) for p in group) - before[role]) / events * 1000 * 1000
        for role, group in groups.items()
    }
    cpu = sum(cpu_seconds(p) for p in pids) - cpu0
    if not arrived:
        print(f"  {name}: only {stats.events} of {events} events arrived within {args.timeout:.0f} s", flush=True)
    distinct = len(set(sink.seqs()))
    end = stats.last_ns / 1e9
    result = Result(
        name,
        len(pids),
        events / ingest_seconds,
        stats.events / max(end - start, 1e-9),
        cpu / events * 1000 * 1000,
        distinct,
        failed,
        role_cpu,
    )
    print(
        f"  {name:<10} {result.ingest_eps:>9,.0f} ingest ev/s  {result.end_to_end_eps:>9,.0f} end-to-end ev/s  "
        f"{result.cpu_ms_per_1000:>6.0f} CPU ms/1000 ev  delivered {distinct:,}/{events:,}"
        + (f"  ({failed} failed requests)" if failed else ""),
        flush=True,
    )
    if len(groups) > 1:
        print("             CPU ms/1000 ev by role: " + ", ".join(f"{r} {v:.0f}" for r, v in role_cpu.items()))
    return result


def embedded(workdir: Path, sink: Sink, feed: Feed, args: argparse.Namespace) -> Result:
    server = ServerProcess(workdir / "embedded")
    server.prepare(webhook_workspace(f"{sink.url}/hook", {"batch": True, "max_batch_size": 100}, {}))
    server.start(timeout=90)
    try:
        assert server.proc is not None
        return measure("embedded", [server.url], {"all": [server.proc.pid]}, sink, feed, args)
    finally:
        server.stop()


def split(workdir: Path, pg: str, per_role: int, sink: Sink, feed: Feed, args: argparse.Namespace) -> Result:
    deployment = Deployment(pg, nats_url(), workdir / f"split{per_role}", max_lease=60)
    deployment.setup(f"{sink.url}/hook")
    try:
        procs = deployment.start({"collect": per_role, "unify": per_role, "route": per_role}, timeout=90)
        groups = {role: [p.proc.pid for p in group if p.proc is not None] for role, group in procs.items()}
        urls = [p.url for p in procs["collect"]]
        return measure(f"split x{per_role}", urls, groups, sink, feed, args)
    finally:
        deployment.stop()
        deployment.drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--per-request", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the last delivery")
    args = parser.parse_args()
    if not (nats_available() and postgres_available()):
        sys.exit("needs NATS (JetStream) at 127.0.0.1:4222 and PostgreSQL at 127.0.0.1:5432")
    print(f"machine: {machine()}", flush=True)
    report_background_load()
    print(f"load: {args.events:,} events, {args.per_request} per request, {args.concurrency} in flight", flush=True)
    feed = Feed()
    with tempfile.TemporaryDirectory(prefix="eventyard-scaleout-") as tmp, postgres_database() as pg:
        workdir = Path(tmp)
        sink = Sink(free_port(), workdir)
        sink.start()
        try:
            base = embedded(workdir, sink, feed, args)
            one = split(workdir, pg, 1, sink, feed, args)
            two = split(workdir, pg, 2, sink, feed, args)
        finally:
            sink.stop()
    report_background_load()
    print("\nratios (end to end; ingest in brackets):")
    for r, against in ((one, base), (two, base), (two, one)):
        print(
            f"  {r.name} / {against.name}: {r.end_to_end_eps / against.end_to_end_eps:.2f} "
            f"({r.ingest_eps / against.ingest_eps:.2f})"
        )


if __name__ == "__main__":
    main()

"""Route benchmark, backlog: the destination is down while 1,000,000 events arrive, then it returns.

    .venv/bin/python bench/route_backlog.py [--events 1000000] [--down refused|503]

What it does, in one run:

1. starts ``eventyard serve`` (every role, the default ``synchronous=FULL`` log) with a
   webhook destination in batch mode (``--webhook-batch`` events per request,
   ``--concurrency`` in flight) pointing at a loopback port where nothing listens
   (``--down refused``, the default) or where the sink answers 503 (``--down 503``);
2. ingests ``--events`` seeded events (batches of ``--load-batch`` to ``/v1/batch``, as
   fast as the server takes them), printing progress, while a thread samples the server's
   RSS with psutil every second;
3. waits until the pipeline has turned every stored event into a delivery job;
4. brings the destination back (starts the sink on that port, or flips it to 200) and waits
   until every event arrived, measuring the drain rate and the RSS during the drain;
5. checks the order of the drain against the events' age (the sequence number each event
   carries in its messageId is its ingest order): displacement, Spearman's rank
   correlation, and how many of the oldest 10% came in the first 10% delivered.

The server's RSS must stay under 300 MB (target of the issue). Only 127.0.0.1 is contacted;
every wait is bounded (``--time-limit`` for each phase).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

from eventyard.testing.server import WRITE_KEY, ServerProcess, free_port
from ingest import report_background_load
from route_common import (
    Feed,
    RssSampler,
    Sink,
    backlog,
    basic_auth,
    blast,
    machine,
    metric_sum,
    percentile,
    scrape,
    stages_env,
    webhook_workspace,
)

RSS_TARGET_MB = 300.0


def order_report(seqs: list[int], n: int) -> dict[str, Any]:
    """How far the arrival order (first arrival of each event) is from oldest-first."""
    seen: set[int] = set()
    order: list[int] = []
    for s in seqs:
        if s not in seen:
            seen.add(s)
            order.append(s)
    m = len(order)
    if m < 2:
        return {"events": m}
    # rank of each sequence number among those that arrived (= its position in perfect order)
    rank = {s: i for i, s in enumerate(sorted(order))}
    displacement = [abs(pos - rank[s]) for pos, s in enumerate(order)]
    d2 = sum(d * d for d in displacement)
    spearman = 1 - 6 * d2 / (m * (m * m - 1))
    ascending = sum(1 for a, b in itertools.pairwise(order) if b > a) / (m - 1)
    tenth = max(1, m // 10)
    oldest = {s for s, r in rank.items() if r < tenth}
    oldest_first = sum(1 for s in order[:tenth] if s in oldest) / tenth
    # per tenth of the drain: the mean age rank (0 = oldest, 1 = newest) of what arrived
    deciles = []
    for k in range(10):
        part = order[k * m // 10 : (k + 1) * m // 10]
        deciles.append(sum(rank[s] for s in part) / len(part) / m if part else float("nan"))
    return {
        "events": m,
        "displacement_p50": percentile([float(d) for d in displacement], 50),
        "displacement_p99": percentile([float(d) for d in displacement], 99),
        "displacement_max": max(displacement),
        "spearman": spearman,
        "ascending_pairs": ascending,
        "oldest_tenth_in_first_tenth": oldest_first,
        "decile_mean_age_rank": deciles,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="events ingested while the destination is down")
    parser.add_argument("--down", choices=["refused", "503"], default="refused", help="how the destination is down")
    parser.add_argument("--load-batch", type=int, default=500, help="events per /v1/batch request")
    parser.add_argument("--load-concurrency", type=int, default=4, help="requests in flight when loading")
    parser.add_argument("--webhook-batch", type=int, default=500, help="webhook events per request")
    parser.add_argument("--concurrency", type=int, default=4, help="webhook requests in flight")
    parser.add_argument("--time-limit", type=float, default=1800, help="bound of each phase, seconds")
    parser.add_argument(
        "--pipeline-stages",
        default=None,
        help="run only these unify stages in the server, e.g. 'dedupe' (default: all; benchmark-only hook)",
    )
    parser.add_argument("--seed", type=int, default=20261129, help="seed of the event generator")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the data directory here")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    args = parser.parse_args()

    uvloop.install()
    print(machine())
    report_background_load()
    feed = Feed(args.seed)
    tmp = None
    if args.workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="eventyard-backlog-bench-")
        workdir = Path(tmp.name)
    else:
        workdir = args.workdir.resolve()
        workdir.mkdir(parents=True, exist_ok=True)
    try:
        results = run(workdir, feed, args)
    finally:
        if tmp is not None:
            tmp.cleanup()
    ok = report(results, args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0 if ok else 1


def run(workdir: Path, feed: Feed, args: argparse.Namespace) -> dict[str, Any]:
    n = args.events
    sink = Sink(free_port(), workdir, status=503 if args.down == "503" else 200)
    if args.down == "503":
        sink.start()
    server = ServerProcess(workdir / "data", env=stages_env(workdir, args.pipeline_stages))
    settings = {
        "batch": True,
        "max_batch_size": args.webhook_batch,
        "concurrency": args.concurrency,
        "timeout_seconds": 30,
    }
    server.prepare(
        webhook_workspace(
            sink.url + "/hook", settings, {"batch_size": args.webhook_batch, "concurrency": args.concurrency}
        )
    )
    server.start()
    assert server.proc is not None
    rss = RssSampler(server.proc.pid).start()
    out: dict[str, Any] = {
        "events": n,
        "down": args.down,
        "synchronous": "FULL (default)",
        "pipeline_stages": args.pipeline_stages or "all",
    }
    try:
        # ---- 1. ingest with the destination down
        t_start = time.monotonic()
        print(f"ingesting {n:,} events with the destination down ({args.down}) ...", flush=True)

        def progress(acked: int, elapsed: float) -> None:
            m = scrape(server.url)
            print(
                f"  {elapsed:5.0f}s  ingested {acked:>9,} ({acked / elapsed:,.0f}/s)  "
                f"ingest backlog {backlog(m, 'ingest'):>9,}  delivery queue {backlog(m, 'deliver.'):>9,}  "
                f"failed deliveries {metric_sum(m, 'eventyard_deliveries_total', 'retry'):>9,.0f}  "
                f"RSS {rss.last_mb():.0f} MB (max {rss.max_mb():.0f})",
                flush=True,
            )

        headers = {"Authorization": basic_auth(WRITE_KEY), "Content-Type": "application/json"}
        load = asyncio.run(
            blast(
                server.url + "/v1/batch",
                feed.batch_body,
                headers,
                events=n,
                per_request=args.load_batch,
                concurrency=args.load_concurrency,
                seconds_limit=args.time_limit,
                progress=progress,
            )
        )
        out.update(
            ingested=load.events_acked,
            ingest_seconds=load.seconds,
            ingest_events_per_s=load.events_acked / load.seconds,
            ingest_failed_requests=load.requests_failed,
            ingest_errors=load.errors,
        )
        print(
            f"  ingested {load.events_acked:,} in {load.seconds:.0f}s ({out['ingest_events_per_s']:,.0f}/s); "
            f"waiting for the pipeline to queue them all ...",
            flush=True,
        )

        # ---- 2. wait for the pipeline to turn everything into delivery jobs
        t0 = time.monotonic()
        deadline = t0 + args.time_limit
        last = 0.0
        while time.monotonic() < deadline:
            m = scrape(server.url)
            if backlog(m, "ingest") == 0:
                break
            if time.monotonic() - last >= 10:
                last = time.monotonic()
                print(
                    f"  ingest backlog {backlog(m, 'ingest'):>9,}  delivery queue {backlog(m, 'deliver.'):>9,}  "
                    f"failed deliveries {metric_sum(m, 'eventyard_deliveries_total', 'retry'):>9,.0f}  "
                    f"RSS {rss.last_mb():.0f} MB",
                    flush=True,
                )
            time.sleep(1)
        m = scrape(server.url)
        t_queued = time.monotonic()
        out.update(
            queued_seconds=t_queued - t_start,
            queue_before_drain=backlog(m, "deliver."),
            failed_deliveries_while_down=metric_sum(m, "eventyard_deliveries_total", "retry"),
            log_disk_mb_before_drain=metric_sum(m, "eventyard_log_disk_bytes") / 2**20,
            rss_max_mb_down=rss.max_mb(),
        )
        print(
            f"  all queued after {out['queued_seconds']:.0f}s: delivery queue {out['queue_before_drain']:,}, "
            f"{out['failed_deliveries_while_down']:,.0f} failed delivery attempts so far, "
            f"log {out['log_disk_mb_before_drain']:,.0f} MB on disk, max RSS {out['rss_max_mb_down']:.0f} MB",
            flush=True,
        )

        # ---- 3. the destination returns
        if args.down == "503":
            sink.set_status(200)
        else:
            sink.start()
        t_up = time.monotonic()
        print("destination is back; draining ...", flush=True)
        deadline = t_up + args.time_limit
        first_at: float | None = None
        timeline: list[tuple[float, int]] = []
        last = 0.0
        expected = load.events_acked
        while time.monotonic() < deadline:
            got = sink.stats().events
            now = time.monotonic()
            timeline.append((now - t_up, got))
            if got and first_at is None:
                first_at = now - t_up
            if got >= expected:
                break
            if now - last >= 10:
                last = now
                m = scrape(server.url)
                print(
                    f"  {now - t_up:5.0f}s  delivered {got:>9,}  queue {backlog(m, 'deliver.'):>9,}  "
                    f"RSS {rss.last_mb():.0f} MB (max {rss.max_mb(since=t_up):.0f})",
                    flush=True,
                )
            time.sleep(0.5)
        st = sink.stats()
        t_done = time.monotonic()
        seqs = list(sink.seqs())
        unique = len(set(seqs))
        out.update(
            delivered=st.events,
            unique=unique,
            duplicates=st.events - unique,
            missing=max(0, expected - unique),
            first_delivery_after_s=first_at,
            drain_seconds=t_done - t_up,
            drain_events_per_s=unique / (t_done - t_up),
            drain_active_events_per_s=unique / ((st.last_ns - st.first_ns) / 1e9) if st.last_ns > st.first_ns else 0.0,
            events_per_request=st.events / st.requests if st.requests else 0.0,
            refused_requests=st.refused_requests,
            rss_max_mb_drain=rss.max_mb(since=t_up),
            rss_max_mb=rss.max_mb(),
            rss_end_mb=rss.last_mb(),
            timeline=timeline[:: max(1, len(timeline) // 60)],
        )
        # steady drain: between 10% and 90% delivered
        lo = next((t for t, g in timeline if g >= 0.1 * expected), None)
        hi = next((t for t, g in timeline if g >= 0.9 * expected), None)
        out["drain_10_90_events_per_s"] = (
            0.8 * expected / (hi - lo) if lo is not None and hi is not None and hi > lo else 0.0
        )
        out["order"] = order_report(seqs, expected)
    finally:
        rss.stop()
        server.stop()
        sink.stop()
    return out


def report(r: dict[str, Any], args: argparse.Namespace) -> bool:
    print()
    print(f"## Backlog: {r['events']:,} events ingested with the webhook down ({r['down']}), then drained")
    print()
    print(
        f"log synchronous: {r['synchronous']}; webhook batch: true, {args.webhook_batch} events per request, "
        f"concurrency {args.concurrency}; pipeline stages: {r['pipeline_stages']}"
    )
    print(
        f"ingest: {r['ingested']:,} events in {r['ingest_seconds']:.0f}s = {r['ingest_events_per_s']:,.0f} events/s"
        f" ({r['ingest_failed_requests']} failed requests)"
    )
    print(
        f"all events queued for delivery after {r['queued_seconds']:.0f}s; "
        f"{r['failed_deliveries_while_down']:,.0f} failed delivery attempts while down; "
        f"log on disk {r['log_disk_mb_before_drain']:,.0f} MB"
    )
    print(
        f"server RSS: max {r['rss_max_mb_down']:.0f} MB while down, max {r['rss_max_mb_drain']:.0f} MB while "
        f"draining, {r['rss_end_mb']:.0f} MB at the end"
    )
    first = r["first_delivery_after_s"]
    print(
        f"drain: first delivery {first:.1f}s after the destination returned; " if first is not None else "drain: ",
        end="",
    )
    print(
        f"{r['unique']:,} events in {r['drain_seconds']:.0f}s = {r['drain_events_per_s']:,.0f} events/s overall, "
        f"{r['drain_10_90_events_per_s']:,.0f} events/s between 10% and 90%, "
        f"{r['events_per_request']:.0f} events per request; missing {r['missing']:,}, duplicates {r['duplicates']:,}"
    )
    o = r["order"]
    if o.get("events", 0) >= 2:
        n = o["events"]
        print(
            f"order vs age: Spearman rho {o['spearman']:.4f} (1 = oldest first); displacement p50 "
            f"{o['displacement_p50']:,.0f} ({o['displacement_p50'] / n:.2%}), p99 {o['displacement_p99']:,.0f} "
            f"({o['displacement_p99'] / n:.2%}), max {o['displacement_max']:,} ({o['displacement_max'] / n:.2%}) "
            f"positions; {o['ascending_pairs']:.1%} of consecutive arrivals ascending; "
            f"{o['oldest_tenth_in_first_tenth']:.1%} of the oldest 10% arrived in the first 10%"
        )
        print(
            "mean age rank per tenth of the drain (0 = oldest, 1 = newest): "
            + " ".join(f"{x:.2f}" for x in o["decile_mean_age_rank"])
        )
    rss_ok = r["rss_max_mb"] < RSS_TARGET_MB
    drained = r["missing"] == 0
    ordered = o.get("spearman", 0) >= 0.99
    print()
    print(f"target RSS < {RSS_TARGET_MB:.0f} MB: max {r['rss_max_mb']:.0f} MB -> {'MET' if rss_ok else 'NOT MET'}")
    print(f"target backlog drains completely: {'MET' if drained else 'NOT MET'}")
    print(f"target drains in order of age (Spearman rho >= 0.99): {'MET' if ordered else 'NOT MET'}")
    return rss_ok and drained and ordered


if __name__ == "__main__":
    sys.exit(main())

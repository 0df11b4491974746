"""Route benchmark, end to end: ingest → pipeline → webhook on loopback.

    .venv/bin/python bench/route_latency.py [--rate 2000] [--duration 25] [--events 200000]

What it does, in one run (about 7 minutes on 2 cores; ``--only latency|throughput`` for a part):

1. **Baselines** on the same machine, with the same sink and the same load generator:
   a bare aiohttp sender posting straight to the sink at the fixed rate (the latency floor
   of the harness), and as fast as it can in batches (the ceiling of one HTTP hop in
   Python here).
2. **Latency at a fixed rate** (default 2,000 events/s: 10 events every 5 ms to
   ``/v1/batch``, on an absolute schedule, for a warm-up plus ``--duration`` seconds): the
   latency of every event is its arrival at the sink minus the moment the generator sent
   it (carried in its messageId). Measured three times: the webhook as configured by
   default (one request per event), in batch mode with its defaults (``batch: true``: JSON
   arrays of up to 100, batch age 1 s), and with ``--webhook-batch`` events per request and
   a batch age of 0.2 s. eventyard's own trace table then says where the time went
   (send → stored → job queued → delivered).
3. **Maximum throughput**, batch mode with ``--webhook-batch`` events per request:

   * *staged*: the same data directory is run three times with one role each: collect only
     (``--events`` events loaded through ``/v1/batch`` as fast as it takes them: the
     ingest-only throughput of this server), unify only (the pipeline turns the stored
     events into delivery jobs), route only (delivers the full queue): each stage's
     events/s with the whole machine to itself;
   * *end to end*: a fresh server with every role, loaded with ``--events`` events as fast
     as it takes them while it delivers; sustained throughput = events / (last delivery −
     first send).

   Each stage also reports the server's CPU time per event (robust to background load).
Ratios are against the baselines of the same run. Every event is checked to arrive (at least
once; duplicates are counted). Only 127.0.0.1 is contacted; every wait is bounded in time.
The log keeps its default ``synchronous=FULL`` (``--log-synchronous NORMAL`` to compare).
"""

from __future__ import annotations

import argparse
import asyncio
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
    Sink,
    backlog,
    basic_auth,
    blast,
    cpu_seconds,
    fixed_rate,
    machine,
    percentile,
    roles_env,
    scrape,
    stages_env,
    trace_breakdown,
    wait_until,
    webhook_workspace,
)

#: Targets of the issue.
P99_TARGET_MS = 1000.0
THROUGHPUT_TARGET = 20_000.0
LATENCY_KEYS = ("latency_single", "latency_batch", "latency_tuned")


LATENCY_LABELS = (
    ("latency_single", "eventyard, webhook one event per request (default)"),
    ("latency_batch", "eventyard, webhook `batch: true` (default: 100 per request, batch age 1 s)"),
    ("latency_tuned", "eventyard, webhook `batch: true`, `--webhook-batch` per request, batch age 0.2 s"),
)


def lat_summary(lat: list[float]) -> dict[str, float]:
    return {
        "p50_ms": percentile(lat, 50),
        "p90_ms": percentile(lat, 90),
        "p99_ms": percentile(lat, 99),
        "max_ms": max(lat) if lat else float("nan"),
    }


def run_fixed(url: str, feed: Feed, args: argparse.Namespace, seconds: float) -> Any:
    headers = {"Authorization": basic_auth(WRITE_KEY), "Content-Type": "application/json"}
    return asyncio.run(
        fixed_rate(url, feed.batch_body, headers, rate=args.rate, per_request=args.per_request, seconds=seconds)
    )


def run_blast(url: str, feed: Feed, n: int, args: argparse.Namespace, label: str, array: bool = False) -> Any:
    headers = {"Authorization": basic_auth(WRITE_KEY), "Content-Type": "application/json"}

    def progress(acked: int, elapsed: float) -> None:
        print(f"    {label}: {acked:,} events in {elapsed:.0f}s", flush=True)

    return asyncio.run(
        blast(
            url,
            feed.array_body if array else feed.batch_body,
            headers,
            events=n,
            per_request=args.load_batch,
            concurrency=args.load_concurrency,
            seconds_limit=args.time_limit,
            progress=progress,
        )
    )


def settle_latencies(sink: Sink, expected: int, warm_seqs: int, seconds: float) -> dict[str, Any]:
    wait_until(lambda: sink.stats().events >= expected, seconds)
    seqs, lat = sink.latencies_ms()
    measured = [x for s, x in zip(seqs, lat, strict=True) if s >= warm_seqs]
    unique = len(set(seqs))
    return {
        "received": len(seqs),
        "unique": unique,
        "duplicates": len(seqs) - unique,
        "missing": max(0, expected - unique),
        "measured_events": len(measured),
        **lat_summary(measured),
    }


# ----------------------------------------------------------------------- scenarios


def baseline_latency(sink: Sink, feed: Feed, args: argparse.Namespace) -> dict[str, Any]:
    sink.reset()
    load = run_fixed(sink.url + "/v1/batch", feed, args, args.baseline_duration)
    out = settle_latencies(sink, load.events_acked, 0, 10)
    out["offered_events_per_s"] = load.events_sent / load.seconds
    return out


def baseline_throughput(sink: Sink, feed: Feed, args: argparse.Namespace) -> dict[str, Any]:
    sink.reset()
    n = args.baseline_events
    load = run_blast(sink.url + "/hook", feed, n, args, "bare sender", array=True)
    st = sink.stats()
    return {"events": st.events, "seconds": load.seconds, "events_per_s": st.events / load.seconds}


def latency_scenario(
    name: str,
    workdir: Path,
    sink: Sink,
    feed: Feed,
    args: argparse.Namespace,
    settings: dict[str, Any],
    delivery: dict[str, Any],
) -> dict[str, Any]:
    sink.reset()
    server = ServerProcess(workdir / name, env=server_env(args, workdir))
    server.prepare(webhook_workspace(sink.url + "/hook", {"timeout_seconds": 10, **settings}, delivery))
    server.start()
    try:
        assert server.proc is not None
        cpu0, t0 = cpu_seconds(server.proc.pid), time.monotonic()
        load = run_fixed(server.url + "/v1/batch", feed, args, args.warmup + args.duration)
        cpu = 100 * (cpu_seconds(server.proc.pid) - cpu0) / (time.monotonic() - t0)
        warm = int(args.warmup * args.rate)
        out = settle_latencies(sink, load.events_acked, warm, args.settle)
        out.update(
            offered_events_per_s=load.events_sent / load.seconds,
            acked_events=load.events_acked,
            failed_requests=load.requests_failed,
            ingest_ack_p50_ms=percentile(load.ack_ms, 50),
            ingest_ack_p99_ms=percentile(load.ack_ms, 99),
            generator_max_behind_ms=load.max_behind_ms,
            server_cpu_percent=cpu,
        )
        st = sink.stats()
        out["events_per_request"] = st.events / st.requests if st.requests else 0.0
        active = (st.last_ns - st.first_ns) / 1e9
        out["delivered_events_per_s"] = st.events / active if active > 0 else 0.0
    finally:
        server.stop()
    out["breakdown"] = trace_breakdown(server.data_dir, warm)
    return out


def throughput_staged(workdir: Path, sink: Sink, feed: Feed, args: argparse.Namespace) -> dict[str, Any]:
    """One data directory, three runs of the server with one role each; events/s and CPU per event."""
    n = args.events
    sink.reset()
    server = ServerProcess(workdir / "staged")
    server.prepare(webhook_workspace(sink.url + "/hook", throughput_settings(args), throughput_delivery(args)))
    out: dict[str, Any] = {"events": n}

    def stage(role: str, work: Any) -> None:
        server.env = {**roles_env(workdir, (role,), f"{role}-only"), **server_env(args, workdir)}
        server.start()
        try:
            assert server.proc is not None
            cpu0, t0 = cpu_seconds(server.proc.pid), time.monotonic()
            events = work()
            seconds = time.monotonic() - t0
            cpu = cpu_seconds(server.proc.pid) - cpu0
        finally:
            server.stop()
        out[role] = {
            "events": events,
            "seconds": seconds,
            "events_per_s": events / seconds if events else 0.0,
            "cpu_us_per_event": 1e6 * cpu / events if events else 0.0,
            "cpu_percent": 100 * cpu / seconds,
        }
        r = out[role]
        print(
            f"  {role} only: {events:,} events in {seconds:.1f}s = {r['events_per_s']:,.0f} events/s, "
            f"server CPU {r['cpu_us_per_event']:.0f} µs per event ({r['cpu_percent']:.0f}% of a core)",
            flush=True,
        )

    def ingest() -> int:
        load = run_blast(server.url + "/v1/batch", feed, n, args, "ingest (collect only)")
        out["ingest_failed_requests"] = load.requests_failed
        return int(load.events_acked)

    def pipeline() -> int:
        ok = wait_until(lambda: backlog(scrape(server.url), "ingest") == 0, args.time_limit, 0.25)
        return backlog(scrape(server.url), "deliver.") if ok else 0

    def deliver() -> int:
        ok = wait_until(lambda: sink.stats().events >= n, args.time_limit, 0.25)
        st = sink.stats()
        out["delivery_events_per_request"] = st.events / st.requests if st.requests else 0.0
        return st.events if ok else 0

    stage("collect", ingest)
    stage("unify", pipeline)
    stage("route", deliver)
    out["ingest_events_per_s"] = out["collect"]["events_per_s"]
    out["pipeline_events_per_s"] = out["unify"]["events_per_s"]
    out["delivery_events_per_s"] = out["route"]["events_per_s"]
    out["cpu_us_per_event_total"] = sum(out[r]["cpu_us_per_event"] for r in ("collect", "unify", "route"))
    return out


def server_env(args: argparse.Namespace, workdir: Path) -> dict[str, str]:
    env = stages_env(workdir, args.pipeline_stages)
    if args.log_synchronous != "FULL":
        env["EVENTYARD_LOG_SYNCHRONOUS"] = args.log_synchronous
    return env


def throughput_e2e(workdir: Path, sink: Sink, feed: Feed, args: argparse.Namespace) -> dict[str, Any]:
    n = args.events
    sink.reset()
    server = ServerProcess(workdir / "e2e", env=server_env(args, workdir))
    server.prepare(webhook_workspace(sink.url + "/hook", throughput_settings(args), throughput_delivery(args)))
    server.start()
    try:
        assert server.proc is not None
        cpu0 = cpu_seconds(server.proc.pid)
        t0 = time.time()
        load = run_blast(server.url + "/v1/batch", feed, n, args, "end to end")
        ingest_done = time.time()
        ok = wait_until(lambda: sink.stats().events >= load.events_acked, args.time_limit, 0.25)
        st = sink.stats()
        elapsed = st.last_ns / 1e9 - t0
        cpu = 100 * (cpu_seconds(server.proc.pid) - cpu0) / (time.time() - t0)
        seqs = sink.seqs()
        unique = len(set(seqs))
        return {
            "events": load.events_acked,
            "delivered": st.events,
            "unique": unique,
            "all_arrived": ok and unique >= load.events_acked,
            "ingest_events_per_s": load.events_acked / load.seconds,
            "ingest_seconds": ingest_done - t0,
            "sustained_events_per_s": unique / elapsed if elapsed > 0 else 0.0,
            "seconds": elapsed,
            "events_per_request": st.events / st.requests if st.requests else 0.0,
            "server_cpu_percent": cpu,
            "cpu_us_per_event": 1e6 * (cpu_seconds(server.proc.pid) - cpu0) / max(1, unique),
        }
    finally:
        server.stop()


def throughput_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {"batch": True, "max_batch_size": args.webhook_batch, "concurrency": args.concurrency, "timeout_seconds": 30}


def throughput_delivery(args: argparse.Namespace) -> dict[str, Any]:
    return {"batch_size": args.webhook_batch, "concurrency": args.concurrency}


# --------------------------------------------------------------------------- report


def report(results: dict[str, Any], args: argparse.Namespace) -> bool:
    ok = True
    if any(k in results for k in LATENCY_KEYS):
        ok = report_latency(results, args) and ok
    if "throughput_staged" in results or "throughput_e2e" in results:
        ok = report_throughput(results, args) and ok
    return ok


def report_latency(results: dict[str, Any], args: argparse.Namespace) -> bool:
    base_lat = results["baseline_latency"]
    print()
    print(
        f"## Latency at {args.rate:,.0f} events/s ({args.per_request} events every "
        f"{1000 * args.per_request / args.rate:g} ms, {args.duration:g}s measured after {args.warmup:g}s warm-up)"
    )
    print()
    print("| path | p50 ms | p90 ms | p99 ms | max ms | events/request | lost | duplicates | server CPU |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| bare aiohttp sender → sink | {base_lat['p50_ms']:.1f} | {base_lat['p90_ms']:.1f} | "
        f"{base_lat['p99_ms']:.1f} | {base_lat['max_ms']:.1f} | {args.per_request} | {base_lat['missing']} | "
        f"{base_lat['duplicates']} | - |"
    )
    for key, label in LATENCY_LABELS:
        r = results.get(key)
        if r is None:
            continue
        print(
            f"| {label} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | {r['p99_ms']:.1f} | {r['max_ms']:.1f} | "
            f"{r['events_per_request']:.1f} | {r['missing']} | {r['duplicates']} | {r['server_cpu_percent']:.0f}% |"
        )
    print()
    for key in LATENCY_KEYS:
        r = results.get(key)
        if r is None:
            continue
        print(
            f"{key}: ingest acknowledged p50 {r['ingest_ack_p50_ms']:.1f} ms, p99 {r['ingest_ack_p99_ms']:.1f} ms; "
            f"offered {r['offered_events_per_s']:,.0f} events/s; generator at most "
            f"{r['generator_max_behind_ms']:.1f} ms behind schedule; failed requests {r['failed_requests']}; "
            f"p99 x{r['p99_ms'] / base_lat['p99_ms']:.0f} the bare hop"
        )
    print()
    print("where the time goes (eventyard's trace table; p50 / p99 ms):")
    for key in LATENCY_KEYS:
        r = results.get(key)
        if r is None:
            continue
        b = r["breakdown"]
        print(
            f"  {key}: send → stored {b['ingest']['p50_ms']:.0f} / {b['ingest']['p99_ms']:.0f}; "
            f"stored → queued (pipeline) {b['pipeline']['p50_ms']:.0f} / {b['pipeline']['p99_ms']:.0f}; "
            f"queued → delivered {b['delivery']['p50_ms']:.0f} / {b['delivery']['p99_ms']:.0f}; "
            f"delivered {r['delivered_events_per_s']:,.0f} events/s while the sink was receiving"
        )
    ok = True
    best = min((results[k]["p99_ms"] for k in LATENCY_KEYS if k in results), default=None)
    if best is not None:
        met = best < P99_TARGET_MS
        ok = met
        print(
            f"target p99 < {P99_TARGET_MS:.0f} ms at {args.rate:,.0f} events/s (best configuration): "
            f"{best:.0f} ms -> {'MET' if met else 'NOT MET'}"
        )
        for k in LATENCY_KEYS:
            if k in results:
                r = results[k]
                lost = f" ({r['missing']} events missing)" if r["missing"] else ""
                met_k = r["p99_ms"] < P99_TARGET_MS and not r["missing"]
                print(f"  {k}: p99 {r['p99_ms']:.0f} ms -> {'MET' if met_k else 'NOT MET'}{lost}")
    return ok


def report_throughput(results: dict[str, Any], args: argparse.Namespace) -> bool:
    ok = True
    base_tp = results["baseline_throughput"]
    staged = results.get("throughput_staged")
    e2e = results.get("throughput_e2e")
    print()
    print(
        f"## Maximum throughput, webhook `batch: true`, {args.webhook_batch} events per request, "
        f"concurrency {args.concurrency}, {args.events:,} events"
    )
    print()
    print("| measurement | events/s | vs bare sender → sink | server CPU µs/event |")
    print("|---|---:|---:|---:|")
    bare = base_tp["events_per_s"]
    print(
        f"| bare aiohttp sender → sink ({args.load_batch}-event arrays, {args.load_concurrency} in flight) | "
        f"{bare:,.0f} | 1.00 | - |"
    )
    if staged:
        for role, label in (
            ("collect", "staged: ingest only (collect role)"),
            ("unify", "staged: pipeline only (unify role)"),
            ("route", "staged: delivery only (route role, full queue)"),
        ):
            r = staged[role]
            eps = r["events_per_s"]
            print(f"| {label} | {eps:,.0f} | {eps / bare:.3f} | {r['cpu_us_per_event']:.0f} |")
    if e2e:
        print(
            f"| end to end: ingest rate while delivering | {e2e['ingest_events_per_s']:,.0f} | "
            f"{e2e['ingest_events_per_s'] / bare:.3f} | - |"
        )
        print(
            f"| end to end: sustained delivered (events / (last delivery − first send)) | "
            f"{e2e['sustained_events_per_s']:,.0f} | {e2e['sustained_events_per_s'] / bare:.3f} | "
            f"{e2e['cpu_us_per_event']:.0f} |"
        )
    if staged:
        total = staged["cpu_us_per_event_total"]
        print()
        print(
            f"CPU per event summed over the three stages: {total:.0f} µs = at most {1e6 / total:,.0f} events/s "
            f"per fully busy core, whatever the disk does"
        )
    print()
    if staged and e2e:
        print(
            f"end to end sustained / ingest-only throughput of the same server: "
            f"{e2e['sustained_events_per_s'] / staged['ingest_events_per_s']:.2f}"
        )
        print(f"delivery only / ingest only: {staged['delivery_events_per_s'] / staged['ingest_events_per_s']:.2f}")
    if e2e:
        print(
            f"end to end: {e2e['unique']:,} of {e2e['events']:,} events arrived "
            f"({e2e['delivered'] - e2e['unique']} duplicates), {e2e['events_per_request']:.0f} per request, "
            f"server CPU {e2e['server_cpu_percent']:.0f}%"
        )
        met = e2e["sustained_events_per_s"] >= THROUGHPUT_TARGET and e2e["all_arrived"]
        ok = ok and met
        print(
            f"target >= {THROUGHPUT_TARGET:,.0f} events/s delivered in batches, end to end: "
            f"{e2e['sustained_events_per_s']:,.0f} -> {'MET' if met else 'NOT MET'}"
        )
    if staged:
        met = staged["delivery_events_per_s"] >= THROUGHPUT_TARGET
        print(
            f"  delivery stage alone (full queue): {staged['delivery_events_per_s']:,.0f} -> "
            f"{'MET' if met else 'NOT MET'}"
        )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=2000, help="events/s of the latency runs")
    parser.add_argument("--per-request", type=int, default=10, help="events per /v1/batch request at the fixed rate")
    parser.add_argument("--duration", type=float, default=25, help="measured seconds at the fixed rate")
    parser.add_argument("--warmup", type=float, default=5, help="seconds at the fixed rate before measuring")
    parser.add_argument("--baseline-duration", type=float, default=10, help="seconds of the bare latency baseline")
    parser.add_argument("--settle", type=float, default=60, help="seconds to wait for the last events to arrive")
    parser.add_argument("--events", type=int, default=200_000, help="events of the throughput runs")
    parser.add_argument("--baseline-events", type=int, default=400_000, help="events of the bare throughput run")
    parser.add_argument("--load-batch", type=int, default=500, help="events per /v1/batch request when loading")
    parser.add_argument("--load-concurrency", type=int, default=4, help="requests in flight when loading")
    parser.add_argument("--webhook-batch", type=int, default=500, help="webhook events per request (throughput)")
    parser.add_argument("--concurrency", type=int, default=4, help="webhook requests in flight (throughput)")
    parser.add_argument("--time-limit", type=float, default=300, help="bound of every wait, seconds")
    parser.add_argument(
        "--log-synchronous",
        choices=["FULL", "NORMAL"],
        default="FULL",
        help="the log's SQLite synchronous setting (default FULL, as the server's default)",
    )
    parser.add_argument(
        "--pipeline-stages",
        default=None,
        help="run only these unify stages in the server, e.g. 'dedupe' (default: all; benchmark-only hook)",
    )
    parser.add_argument("--seed", type=int, default=20261129, help="seed of the event generator")
    parser.add_argument(
        "--only", choices=["latency", "throughput"], default=None, help="run only one part (baselines always run)"
    )
    parser.add_argument("--workdir", type=Path, default=None, help="keep data directories here")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    args = parser.parse_args()

    uvloop.install()
    print(machine())
    report_background_load()
    feed = Feed(args.seed)
    print(
        f"events: seeded generator (seed {args.seed}), {len(feed.parts)} templates, "
        f"mean {feed.mean_event_bytes:.0f} bytes",
        flush=True,
    )
    if args.pipeline_stages:
        print(f"pipeline stages in the server: only {args.pipeline_stages} (benchmark hook)", flush=True)

    tmp = None
    if args.workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="eventyard-route-bench-")
        workdir = Path(tmp.name)
    else:
        workdir = args.workdir.resolve()
        workdir.mkdir(parents=True, exist_ok=True)
    sink = Sink(free_port(), workdir)
    sink.start()
    results: dict[str, Any] = {"machine": machine(), "args": {k: str(v) for k, v in vars(args).items()}}
    try:
        print("baseline: bare aiohttp sender → sink at the fixed rate ...", flush=True)
        results["baseline_latency"] = baseline_latency(sink, feed, args)
        print("baseline: bare aiohttp sender → sink, as fast as it goes ...", flush=True)
        results["baseline_throughput"] = baseline_throughput(sink, feed, args)
        print(f"  {results['baseline_throughput']['events_per_s']:,.0f} events/s", flush=True)
        if args.only in (None, "latency"):
            print("latency: webhook, one event per request ...", flush=True)
            results["latency_single"] = latency_scenario("lat-single", workdir, sink, feed, args, {}, {})
            print("latency: webhook, batch: true ...", flush=True)
            results["latency_batch"] = latency_scenario("lat-batch", workdir, sink, feed, args, {"batch": True}, {})
            print(f"latency: webhook, batch: true, {args.webhook_batch} per request, batch age 0.2 s ...", flush=True)
            results["latency_tuned"] = latency_scenario(
                "lat-tuned",
                workdir,
                sink,
                feed,
                args,
                {"batch": True, "max_batch_size": args.webhook_batch},
                {"batch_size": args.webhook_batch, "batch_age_seconds": 0.2},
            )
        if args.only in (None, "throughput"):
            print("throughput, staged (collect only, unify only, route only) ...", flush=True)
            results["throughput_staged"] = throughput_staged(workdir, sink, feed, args)
            print("throughput, end to end (all roles) ...", flush=True)
            results["throughput_e2e"] = throughput_e2e(workdir, sink, feed, args)
    finally:
        sink.stop()
        if tmp is not None:
            tmp.cleanup()
    ok = report(results, args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Identity resolution throughput and Profile API latency, on SQLite and PostgreSQL.

    .venv/bin/python bench/identity.py                      # 200,000 profiles / 600,000 identifiers
    .venv/bin/python bench/identity.py --full               # 1,000,000 profiles / 3,000,000 identifiers
    .venv/bin/python bench/identity.py --backends sqlite --events 100000 --api-seconds 5

* **Graph** (deterministic, not timed as throughput): ``--profiles`` user profiles, each with
  ``user_id:u<i>``, ``email:u<i>@example.com`` and ``anonymous_id:a<i>`` (three identifiers a
  profile), 8 traits each, 50 traits for the first ``--api-profiles``. Bulk-loaded straight into
  the identity tables (SQLite: the state database of a fresh data directory; PostgreSQL: a
  throwaway database on 127.0.0.1:5432, dropped at the end).
* **Events** (seed ``--seed``): ``--events`` normalized events in batches of 1,000, the mix of a
  busy site: 60 % track by a known userId, 15 % page by a known anonymousId, 10 % page by a new
  visitor, 5 % identify of a known user from a new device (adds an identifier), 5 % identify of
  an earlier new visitor (a merge of two profiles), 3 % identify of a known user with another
  user's anonymousId (refused by the user_id limit), 2 % page with a blocked anonymousId.
* **Resolution**: the first half of the events through the identity stage alone (lookup, rule
  checks, merges, stamping: what the issue calls "resolved"), the second half through identity
  and profiles (traits, metadata, history): events/s of each, single worker, wall clock.
* **Profile API**: a real ``eventyard serve`` on the same data, ``GET .../traits`` of random
  profiles with 50 traits at a fixed ``--api-rate`` for ``--api-seconds`` (open loop: latency
  counts from the scheduled send time), first alone, then while ``--ingest-rate`` events/s are
  sent to ``/v1/batch`` (the pipeline resolves them meanwhile); then ``--api-concurrency``
  clients back to back for the most requests/s. Latency p50/p95/p99 measured by the client.

Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import platform
import random
import secrets
import shutil
import sqlite3
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import psycopg
from psycopg import sql

from eventyard.quality.metrics import Metrics
from eventyard.runtime import heap
from eventyard.spec.pipeline import PipelineEvent
from eventyard.state.identity_base import IdentityStore
from eventyard.state.identity_postgres import PostgresIdentityStore
from eventyard.state.identity_sqlite import SQLiteIdentityStore
from eventyard.state.sqlite import SQLiteStateStore
from eventyard.testing.server import ServerProcess
from eventyard.unify import identity, profiles
from eventyard.unify.context import StageContext
from eventyard.unify.identity_service import IdentityService

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
SEED = 20260601
BATCH = 1000
BASE_TS = 1772323200.0  # 2026-03-01T00:00:00Z


def profile_id(i: int) -> str:
    return f"prf_{i:020x}"


# ----------------------------------------------------------------------------- graph


def graph_rows(
    n: int, api_profiles: int, ws: str, source: str
) -> Iterator[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
    """(profile rows, identifier rows) in chunks, in the column order of the identity tables."""
    chunk = 20_000
    small = msgspec.json.encode({f"t{k}": [f"value {k}", BASE_TS, source, "seed"] for k in range(8)}).decode()
    big = msgspec.json.encode({f"t{k:02d}": [f"value {k}", BASE_TS, source, "seed"] for k in range(50)}).decode()
    for start in range(0, n, chunk):
        profs, idents = [], []
        for i in range(start, min(n, start + chunk)):
            pid = profile_id(i)
            at = BASE_TS - 86400 * 30 + i * 0.001
            profs.append(
                (
                    pid,
                    ws,
                    "users",
                    at,
                    at,
                    None,
                    0,
                    at,
                    at,
                    "seed",
                    source,
                    "seed",
                    source,
                    big if i < api_profiles else small,
                )
            )
            for key in (f"user_id:u{i}", f"email:u{i}@example.com", f"anonymous_id:a{i}"):
                idents.append((ws, "users", key, pid, at, "seed", source, pid, at))
        yield profs, idents


def load_sqlite(path: Path, n: int, api_profiles: int, ws: str, source: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    for profs, idents in graph_rows(n, api_profiles, ws, source):
        conn.executemany(f"INSERT INTO idn_profiles VALUES ({','.join('?' * 13)})", [p[:-1] for p in profs])
        conn.executemany("INSERT INTO idn_profile_traits VALUES (?, ?)", [(p[0], p[-1]) for p in profs])
        conn.executemany(
            "INSERT INTO idn_identifiers (workspace_id, collection, key, profile_id, added_at, message_id, source_id, "
            "origin_profile, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            idents,
        )
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def load_postgres(dsn: str, schema: str, n: int, api_profiles: int, ws: str, source: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        with conn.cursor() as cur:
            for profs, idents in graph_rows(n, api_profiles, ws, source):
                with cur.copy(
                    "COPY idn_profiles (id, workspace_id, collection, created_at, updated_at, merged_into, merges, "
                    "first_seen, last_seen, first_message_id, first_source_id, last_message_id, last_source_id) "
                    "FROM STDIN"
                ) as copy:
                    for row in profs:
                        copy.write_row(row[:-1])
                with cur.copy("COPY idn_profile_traits (profile_id, traits) FROM STDIN") as copy:
                    for row in profs:
                        copy.write_row((row[0], row[-1]))
                with cur.copy(
                    "COPY idn_identifiers (workspace_id, collection, key, profile_id, added_at, message_id, "
                    "source_id, origin_profile, created_at) FROM STDIN"
                ) as copy:
                    for row in idents:
                        copy.write_row(row)
        conn.execute("VACUUM ANALYZE idn_profiles")
        conn.execute("VACUUM ANALYZE idn_profile_traits")
        conn.execute("VACUUM ANALYZE idn_identifiers")


# ---------------------------------------------------------------------------- events


@dataclass
class Mix:
    counts: dict[str, int] = field(default_factory=dict)


def make_events(n: int, graph: int, seed: int) -> tuple[list[dict[str, Any]], Mix]:
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    visitors: list[int] = []
    mix = Mix()
    fresh = 0
    for i in range(n):
        r = rng.random()
        ts = f"2026-03-01T{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}.{i % 1000:03d}Z"
        e: dict[str, Any] = {"messageId": f"b{seed}-{i}", "context": {"library": {"name": "bench"}}, "timestamp": ts}
        k = rng.randrange(graph)
        if r < 0.60:
            kind = "track_known"
            e.update(type="track", userId=f"u{k}", event="Product Viewed", properties={"sku": f"S{k % 977}"})
        elif r < 0.75:
            kind = "page_known_anonymous"
            e.update(type="page", anonymousId=f"a{k}", name="Home")
        elif r < 0.85:
            kind = "page_new_visitor"
            fresh += 1
            visitors.append(fresh)
            e.update(type="page", anonymousId=f"v{fresh}", name="Landing")
        elif r < 0.90:
            kind = "identify_new_device"
            e.update(type="identify", userId=f"u{k}", anonymousId=f"d{i}", traits={"last_device": f"d{i}"})
        elif r < 0.95 and visitors:
            kind = "identify_merge"
            v = visitors.pop(rng.randrange(len(visitors)))
            e.update(type="identify", userId=f"u{k}", anonymousId=f"v{v}", traits={"plan": "pro"})
        elif r < 0.98:
            kind = "identify_refused"
            e.update(type="identify", userId=f"u{k}", anonymousId=f"a{(k + 1) % graph}")
        else:
            kind = "page_blocked"
            e.update(type="page", anonymousId="anonymous", name="Home")
        mix.counts[kind] = mix.counts.get(kind, 0) + 1
        events.append(e)
    return events, mix


# ------------------------------------------------------------------------ resolution


async def resolve(
    store: IdentityStore,
    state: SQLiteStateStore,
    source: str,
    events: list[dict[str, Any]],
    stages: list[Any],
    settle: bool = True,
) -> tuple[float, float, Metrics]:
    """(events/s, µs of this process's CPU per event, the stage metrics)."""
    metrics = Metrics()
    service = IdentityService(store, state, metrics)
    ctx = StageContext(state, identity=service)
    copies = msgspec.json.decode(msgspec.json.encode(events))
    batches = [
        [PipelineEvent(i + 1, source, e["messageId"], e, time.time()) for i, e in enumerate(copies[s : s + BATCH], s)]
        for s in range(0, len(copies), BATCH)
    ]
    await stages[0].run(batches[0][:10], ctx)  # warm the caches (rules, sources)
    if settle:
        # the garbage collector as `eventyard serve` runs it (``runtime.heap``): with the
        # defaults, full collections over the bench's own 200,000 prepared events were 10-15 %
        # of the measured CPU, a cost the server does not have
        heap.settle_after_start()
    started, cpu = time.perf_counter(), time.process_time()
    for batch in batches:
        current = batch
        for stage in stages:
            current = (await stage.run(current, ctx)).kept
    elapsed = time.perf_counter() - started
    return len(events) / elapsed, (time.process_time() - cpu) / len(events) * 1e6, metrics


def counter(metrics: Metrics, name: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in metrics.registry.collect():
        if family.name == name:
            for s in family.samples:
                if s.name.endswith("_total"):
                    out[",".join(s.labels.values())] = s.value
    return out


# ----------------------------------------------------------------------- Profile API


def _traits_path(space: str, k: int) -> str:
    return f"/v1/spaces/{space}/collections/users/profiles/user_id:u{k}/traits?limit=200"


async def api_closed(
    url: str, token: str, space: str, api_profiles: int, seconds: float, concurrency: int, seed: int
) -> list[float]:
    """``concurrency`` clients back to back: how many requests the server answers per second."""
    rng = random.Random(seed)
    auth = "Basic " + base64.b64encode(f"{token}:".encode()).decode()
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers={"Authorization": auth}) as session:

        async def worker() -> None:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                async with session.get(url + _traits_path(space, rng.randrange(api_profiles))) as resp:
                    body = await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"{resp.status}: {body[:200]!r}")
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


async def api_open(
    url: str, token: str, space: str, api_profiles: int, seconds: float, rate: int, seed: int
) -> list[float]:
    """Requests at a fixed rate, whatever the answers do; latency counts from the scheduled
    send time, so a slow server cannot hide its queue (no coordinated omission)."""
    rng = random.Random(seed)
    auth = "Basic " + base64.b64encode(f"{token}:".encode()).decode()
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector, headers={"Authorization": auth}) as session:

        async def one(path: str, scheduled: float) -> None:
            async with session.get(url + path) as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"{resp.status}: {body[:200]!r}")
            latencies.append(time.perf_counter() - scheduled)

        tasks = []
        start = time.perf_counter()
        for n in range(int(seconds * rate)):
            scheduled = start + n / rate
            await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
            tasks.append(asyncio.create_task(one(_traits_path(space, rng.randrange(api_profiles)), scheduled)))
        await asyncio.gather(*tasks)
    return latencies


async def ingest_load(url: str, write_key: str, rate: int, stop: asyncio.Event, graph: int, seed: int) -> int:
    """``rate`` events/s as 100-event batches on a fixed schedule; returns events sent."""
    rng = random.Random(seed)
    auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    per_batch = 100
    interval = per_batch / rate
    sent = 0
    async with aiohttp.ClientSession(headers={"Authorization": auth, "Content-Type": "application/json"}) as session:
        next_at = time.perf_counter()
        pending: set[asyncio.Task[None]] = set()

        async def post(body: bytes) -> None:
            async with session.post(url + "/v1/batch", data=body) as resp:
                await resp.read()

        while not stop.is_set():
            batch = []
            for _ in range(per_batch):
                k = rng.randrange(graph)
                if rng.random() < 0.8:
                    batch.append({"type": "track", "userId": f"u{k}", "event": "Clicked", "properties": {"n": sent}})
                else:
                    batch.append({"type": "page", "anonymousId": f"w{seed}-{sent}", "name": "Home"})
                sent += 1
            task = asyncio.create_task(post(msgspec.json.encode({"batch": batch})))
            pending.add(task)
            task.add_done_callback(pending.discard)
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        if pending:
            await asyncio.gather(*pending)
    return sent


def percentiles(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return at(0.50), at(0.95), at(0.99)


def admin_post(server: ServerProcess, path: str, body: dict[str, Any]) -> Any:
    req = urllib.request.Request(
        server.url + path,
        data=msgspec.json.encode(body),
        headers={"Authorization": f"Bearer {server.admin_token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return msgspec.json.decode(resp.read())


async def api_phase(
    server: ServerProcess, space: str, token: str, args: argparse.Namespace, ingest: bool
) -> dict[str, Any]:
    stop = asyncio.Event()
    feeder = (
        asyncio.create_task(ingest_load(server.url, server.write_key, args.ingest_rate, stop, args.profiles, args.seed))
        if ingest
        else None
    )
    lat = await api_open(server.url, token, space, args.api_profiles, args.api_seconds, args.api_rate, args.seed)
    stop.set()
    sent = await feeder if feeder is not None else 0
    p50, p95, p99 = percentiles(lat)
    return {"requests": len(lat), "rps": args.api_rate, "p50": p50, "p95": p95, "p99": p99, "sent": sent}


async def api_throughput(server: ServerProcess, space: str, token: str, args: argparse.Namespace) -> dict[str, Any]:
    seconds = max(3.0, args.api_seconds / 2)
    lat = await api_closed(server.url, token, space, args.api_profiles, seconds, args.api_concurrency, args.seed)
    p50, p95, p99 = percentiles(lat)
    return {"requests": len(lat), "rps": len(lat) / seconds, "p50": p50, "p95": p95, "p99": p99, "sent": 0}


# ------------------------------------------------------------------------------ main


async def run_backend(kind: str, args: argparse.Namespace, events: list[dict[str, Any]]) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix=f"eventyard-bench-identity-{kind}-"))
    server = ServerProcess(root / "data")
    # the API phases send hundreds of requests/s with one token: no per-token limit here
    server.env["EVENTYARD_PROFILE_API_RATE_LIMIT_PER_SECOND"] = "0"
    dsn = None
    db_name = f"eventyard_bench_{secrets.token_hex(4)}"
    schema = "eventyard_identity"
    result: dict[str, Any] = {"backend": kind}
    try:
        if kind == "postgres":
            with psycopg.connect(ADMIN, autocommit=True) as conn:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db_name)))
            dsn = f"postgresql://postgres@127.0.0.1:5432/{db_name}"
            server.env["EVENTYARD_IDENTITY_STORE"] = f"{dsn}?schema={schema}"
        server.prepare()
        state = SQLiteStateStore(root / "data" / "state.sqlite3")
        await state.start()
        ws = (await state.list_workspaces())[0]
        source = (await state.list_sources(ws.id))[0]
        store: IdentityStore
        if kind == "sqlite":
            store = SQLiteIdentityStore(root / "data" / "state.sqlite3")
        else:
            assert dsn is not None
            store = PostgresIdentityStore(dsn, schema=schema)
        await store.start()  # creates the tables
        t0 = time.perf_counter()
        if kind == "sqlite":
            await store.close()
            load_sqlite(root / "data" / "state.sqlite3", args.profiles, args.api_profiles, ws.id, source.id)
            store = SQLiteIdentityStore(root / "data" / "state.sqlite3")
            await store.start()
        else:
            assert dsn is not None
            load_postgres(dsn, schema, args.profiles, args.api_profiles, ws.id, source.id)
        result["load_seconds"] = time.perf_counter() - t0
        half = len(events) // 2
        result["identity_eps"], result["identity_cpu"], metrics = await resolve(
            store, state, source.id, events[:half], [identity], not args.default_gc
        )
        result["outcomes"] = counter(metrics, "eventyard_identity_events")
        result["merges"] = sum(counter(metrics, "eventyard_identity_merges").values())
        result["refused"] = counter(metrics, "eventyard_identity_refused")
        result["unify_eps"], result["unify_cpu"], _ = await resolve(
            store, state, source.id, events[half:], [identity, profiles], not args.default_gc
        )
        result["conflicts"] = getattr(store, "conflicts", 0)
        await store.close()
        await state.close()
        if args.api_seconds > 0:
            server.start(timeout=120)
            try:
                token = admin_post(server, "/api/v1/profile-tokens", {"name": "bench"})["token"]
                await api_closed(server.url, token, ws.name, args.api_profiles, 1.0, 4, args.seed)  # warm-up
                result["api"] = await api_phase(server, ws.name, token, args, ingest=False)
                result["api_ingest"] = await api_phase(server, ws.name, token, args, ingest=True)
                result["api_max"] = await api_throughput(server, ws.name, token, args)
            finally:
                server.stop()
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
        if dsn is not None:
            with psycopg.connect(ADMIN, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db_name)))
    return result


def background_load() -> float:
    with contextlib.suppress(OSError):
        return os.getloadavg()[0]
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", type=int, default=200_000)
    parser.add_argument("--full", action="store_true", help="1,000,000 profiles / 3,000,000 identifiers")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--api-profiles", type=int, default=20_000)
    parser.add_argument("--api-seconds", type=float, default=15.0)
    parser.add_argument("--api-rate", type=int, default=300, help="Profile API requests/s of the latency phases")
    parser.add_argument("--api-concurrency", type=int, default=8, help="clients of the throughput phase")
    parser.add_argument("--ingest-rate", type=int, default=2000, help="events/s sent during the second API phase")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument(
        "--default-gc",
        action="store_true",
        help="keep CPython's default collector thresholds while resolving (runs before this option)",
    )
    args = parser.parse_args()
    if args.full:
        args.profiles = 1_000_000
    args.api_profiles = min(args.api_profiles, args.profiles)
    events, mix = make_events(args.events, args.profiles, args.seed)
    print(
        f"graph {args.profiles:,} profiles / {3 * args.profiles:,} identifiers; "
        f"{args.events:,} events, seed {args.seed}; "
        f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs, "
        f"load average before: {background_load():.2f}",
        flush=True,
    )
    print("event mix: " + ", ".join(f"{k} {v:,}" for k, v in sorted(mix.counts.items())), flush=True)
    for kind in args.backends.split(","):
        r = asyncio.run(run_backend(kind.strip(), args, events))
        print(f"\n[{r['backend']}] graph loaded in {r['load_seconds']:.1f} s", flush=True)
        print(
            f"  identity stage only:    {r['identity_eps']:>9,.0f} events/s "
            f"({r['identity_cpu']:.0f} µs of this process's CPU per event)",
            flush=True,
        )
        print(
            f"  identity + profiles:    {r['unify_eps']:>9,.0f} events/s ({r['unify_cpu']:.0f} µs CPU per event)",
            flush=True,
        )
        print(f"  outcomes {r['outcomes']}, merges {r['merges']:.0f}, refused {r['refused']}", flush=True)
        if r.get("conflicts"):
            print(f"  transactions run again after a conflict: {r['conflicts']}")
        for key, label in (
            ("api", f"Profile API /traits at {args.api_rate}/s"),
            ("api_ingest", f"  ... while {args.ingest_rate:,} events/s are ingested"),
            ("api_max", f"  ... as fast as {args.api_concurrency} clients get answers"),
        ):
            a = r.get(key)
            if a:
                print(
                    f"  {label}: {a['requests']:,} requests, {a['rps']:,.0f}/s, p50 {a['p50']:.2f} ms, "
                    f"p95 {a['p95']:.2f} ms, p99 {a['p99']:.2f} ms"
                    + (f" ({a['sent']:,} events sent meanwhile)" if a["sent"] else ""),
                    flush=True,
                )


if __name__ == "__main__":
    sys.exit(main())

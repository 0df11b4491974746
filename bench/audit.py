"""What the audit trail costs a request of the control plane, in-process.

    .venv/bin/python bench/audit.py                  # 3 rounds of 2,000 requests each way
    .venv/bin/python bench/audit.py --requests 5000 --concurrency 32 --rounds 5
    .venv/bin/python bench/audit.py --state postgres   # the PostgreSQL state store (127.0.0.1:5432)

One small Starlette app with an endpoint at an audited path (``GET /api/v1/sources/{s}/events``,
answering a 1 KiB JSON body, no I/O of its own) is called in-process (no network) with and
without :class:`eventyard.control.audit_middleware.AuditMiddleware` over a real SQLite state
store in a temporary directory (WAL, the store's own settings; ``--state postgres``: a
PostgreSQL state store in a throwaway database, dropped afterwards): the difference is the audit
trail (token lookup, cached; one append per request, written before the answer leaves).
``--concurrency`` requests are in flight at once; the two apps alternate per round and the
best round of each is kept. Prints requests/s of both, their ratio and the mean added
latency per request; the data is the same on every run (no randomness).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sqlite3
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from eventyard.control.audit_middleware import audit_middleware
from eventyard.quality.metrics import Metrics
from eventyard.state.base import StateStore
from eventyard.state.ids import hash_token
from eventyard.state.sqlite import SQLiteStateStore
from eventyard.testing.asgi import call
from eventyard.testing.identity import postgres_database
from eventyard.testing.scaleout import postgres_state

TOKEN = "eyt_bench-owner-token"
PAYLOAD = {"data": [{"i": i, "event": "Order Completed", "userId": f"u{i}"} for i in range(16)]}


async def events(request: Request) -> Response:
    return JSONResponse(PAYLOAD)


def make_app(state: StateStore | None) -> Starlette:
    middleware = [audit_middleware(state, Metrics(), False)] if state is not None else []
    return Starlette(routes=[Route("/api/v1/sources/{source}/events", events)], middleware=middleware)


async def measure(app: Starlette, requests: int, concurrency: int) -> float:
    headers = {"authorization": f"Bearer {TOKEN}"}
    queue = iter(range(requests))

    async def worker() -> None:
        for i in queue:
            r = await call(app, "GET", f"/api/v1/sources/web/events?limit={i % 50 + 1}", headers=headers)
            assert r.status == 200, r.body

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return requests / (time.perf_counter() - start)


@asynccontextmanager
async def started_store(kind: str) -> AsyncIterator[StateStore]:
    if kind == "postgres":
        with postgres_database() as dsn:
            async with postgres_state(dsn) as pg:
                yield pg
        return
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStateStore(Path(tmp) / "state.sqlite3")
        await store.start()
        try:
            yield store
        finally:
            await store.close()


async def main(args: argparse.Namespace) -> None:
    async with started_store(args.state) as state:
        await state.create_workspace("default")
        await state.add_token("bench", "owner", hash_token(TOKEN))
        bare, audited = make_app(None), make_app(state)
        await measure(bare, 200, args.concurrency)  # warm-up
        await measure(audited, 200, args.concurrency)
        best = {"bare": 0.0, "audited": 0.0}
        for n in range(args.rounds):
            order = [("bare", bare), ("audited", audited)]
            for name, app in order if n % 2 == 0 else order[::-1]:
                rate = await measure(app, args.requests, args.concurrency)
                best[name] = max(best[name], rate)
                print(f"round {n + 1}: {name:<8} {rate:>9,.0f} requests/s", flush=True)
        written = len(await state.list_audit(limit=1_000_000))
    added_ms = (1 / best["audited"] - 1 / best["bare"]) * 1000
    print(f"\nbare    {best['bare']:>9,.0f} requests/s")
    print(f"audited {best['audited']:>9,.0f} requests/s   ratio {best['audited'] / best['bare']:.2f}")
    print(f"audit cost per request (wall clock, {args.concurrency} in flight): {added_ms:.3f} ms")
    print(f"entries written: {written:,}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--state", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    print(
        f"python {platform.python_version()}, sqlite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs, "
        f"load average before: {os.getloadavg()[0]:.2f}",
        file=sys.stderr,
    )
    asyncio.run(main(args))

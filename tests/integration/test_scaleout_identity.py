"""Identity merges stay correct when several unify processes resolve the same people at once.

Two unify processes (separate OS processes, separate PostgreSQL connections) take batches of
one burst of requests; each person's four identifiers arrive in four different requests, so
the two processes race to link them. Afterwards every identifier of a person resolves to the
same profile and there is exactly one profile per person.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import http.client
import json
from base64 import b64encode
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eventyard.state.identity_base import GraphTx
from eventyard.state.identity_postgres import PostgresIdentityStore
from eventyard.testing.deployment import Deployment, metric
from eventyard.testing.scaleout import nats_available, nats_url, postgres_available, postgres_database
from eventyard.testing.server import WRITE_KEY
from eventyard.testing.services import require_service
from eventyard.testing.wait import eventually
from eventyard.unify import profile_views

pytestmark = pytest.mark.slow

ROUNDS = 6
PEOPLE = 25  # per round


@pytest.fixture(scope="module")
def pg() -> Iterator[str]:
    require_service(postgres_available(), "PostgreSQL at 127.0.0.1:5432")
    with postgres_database() as dsn:
        yield dsn


def requests_of_round(r: int) -> list[list[dict[str, Any]]]:
    """Four requests, each holding one of the four identifiers of every person of round ``r``."""
    people = [f"p{r}-{i}" for i in range(PEOPLE)]
    return [
        [{"type": "identify", "userId": p, "anonymousId": f"a-{p}"} for p in people],
        [{"type": "identify", "userId": p, "anonymousId": f"b-{p}"} for p in people],
        [{"type": "page", "anonymousId": f"b-{p}", "context": {"traits": {"email": f"{p}@x.io"}}} for p in people],
        [{"type": "page", "anonymousId": f"a-{p}", "context": {"device": {"id": f"d-{p}"}}} for p in people],
    ]


def post(port: int, batch: list[dict[str, Any]]) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        auth = "Basic " + b64encode(f"{WRITE_KEY}:".encode()).decode()
        conn.request("POST", "/v1/batch", json.dumps({"batch": batch}), {"Authorization": auth})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def test_two_unify_processes_merge_the_same_people_correctly(tmp_path: Path, pg: str) -> None:
    require_service(nats_available(), "NATS JetStream at 127.0.0.1:4222")
    deployment = Deployment(pg, nats_url(), tmp_path)
    deployment.setup("http://127.0.0.1:9/unused")
    try:
        procs = deployment.start({"collect": 1, "unify": 2})
        port = procs["collect"][0].port
        # Requests of five events: many small records, so the work takes many leases and both
        # unify processes get some of it (one lease takes at most a few records).
        bodies = [
            body[i : i + 5] for r in range(ROUNDS) for body in requests_of_round(r) for i in range(0, len(body), 5)
        ]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda b: post(port, b), bodies))
        assert statuses == [200] * len(bodies)
        total = sum(len(b) for b in bodies)
        done = eventually(
            lambda: [metric(p, "eventyard_pipeline_events") for p in procs["unify"]],
            lambda counts: sum(counts) >= total,
            timeout=90,
            every=0.5,
        )
        assert sum(done) >= total
        assert all(n > 0 for n in done), f"one unify process did all the work: {done}"
        wrong = asyncio.run(check_people(pg, deployment))
        assert wrong == [], f"{len(wrong)} identifiers resolve to another profile, e.g. {wrong[:5]}"
    finally:
        deployment.stop()
        deployment.drop()


async def check_people(pg: str, deployment: Deployment) -> list[str]:
    store = PostgresIdentityStore(pg, deployment.identity_schema)
    await store.start()
    ws = deployment.workspace_id

    def read(tx: GraphTx) -> tuple[list[str], dict[str, int]]:
        wrong: list[str] = []
        for r in range(ROUNDS):
            for i in range(PEOPLE):
                p = f"p{r}-{i}"
                person = profile_views.find(tx, ws, "users", f"user_id:{p}")
                if person is None:
                    wrong.append(f"user_id:{p} (no profile)")
                    continue
                for ref in (f"anonymous_id:a-{p}", f"anonymous_id:b-{p}", f"email:{p}@x.io", f"device.id:d-{p}"):
                    other = profile_views.find(tx, ws, "users", ref)
                    if other is None or other.id != person.id:
                        wrong.append(ref)
        return wrong, tx.counts(ws)

    try:
        wrong, counts = await store.read(read)
    finally:
        await store.close()
    if counts["profiles"] != ROUNDS * PEOPLE:
        wrong.append(f"{counts['profiles']} profiles for {ROUNDS * PEOPLE} people")
    return wrong

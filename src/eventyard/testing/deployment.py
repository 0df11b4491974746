"""A split deployment on loopback for tests and benchmarks: role processes, NATS, PostgreSQL.

``Deployment`` configures a workspace in a fresh PostgreSQL schema (one source with a known
write key, a webhook destination to a recorder) and starts ``eventyard serve --role ...``
subprocesses against one NATS log prefix. ``Load`` posts batches to the collect processes and
remembers which messageIds were acknowledged. ``NatsCluster`` runs a three-node JetStream
cluster of real ``nats-server`` processes on free loopback ports.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import http.client
import json
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from base64 import b64encode
from collections import Counter
from pathlib import Path
from typing import Any

from eventyard.state.base import DeliveryPolicy
from eventyard.state.postgres import PostgresStateStore
from eventyard.testing.scaleout import unique_prefix, with_schema
from eventyard.testing.server import ADMIN_TOKEN, WRITE_KEY, ServerProcess, free_port
from eventyard.testing.services import port_open
from eventyard.testing.wait import eventually

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


class Role(ServerProcess):
    """One ``eventyard serve`` process of a split deployment."""

    role: str = ""


class Deployment:
    """Role processes sharing one NATS log (a fresh prefix) and one PostgreSQL schema."""

    def __init__(self, pg_dsn: str, nats: str, directory: Path, max_lease: float = 5.0) -> None:
        self.prefix = unique_prefix("d")
        self.state_url = with_schema(pg_dsn, self.prefix)
        sep = "&" if "?" in nats else "?"
        self.log_url = f"{nats}{sep}prefix={self.prefix}&max_lease={max_lease:g}"
        self.directory = directory
        self.processes: list[Role] = []
        self.destination_id = ""
        self.workspace_id = ""

    async def _setup(self, hook_url: str, batch: bool) -> None:
        store = PostgresStateStore(self.state_url)
        await store.start()
        try:
            ws = await store.create_workspace("default")
            source = await store.create_source(ws.id, "default", write_key=WRITE_KEY)
            dest = await store.create_destination(
                ws.id,
                "recorder",
                "webhook",
                settings={"url": hook_url, "batch": batch, "max_batch_size": 100, "timeout_seconds": 5},
                delivery=DeliveryPolicy(max_attempts=50, retry_window_hours=1.0),
            )
            await store.set_connection(source.id, dest.id)
            self.destination_id = dest.id
            self.workspace_id = ws.id
        finally:
            await store.close()

    def setup(self, hook_url: str, batch: bool = True) -> None:
        """The workspace: source ``default`` (key ``WRITE_KEY``) → webhook at ``hook_url``."""
        asyncio.run(self._setup(hook_url, batch))

    def env(self, roles: str) -> dict[str, str]:
        return {"EVENTYARD_ROLES": roles, "EVENTYARD_LOG": self.log_url, "EVENTYARD_STATE": self.state_url}

    @property
    def identity_schema(self) -> str:
        """Where the identity graph of this deployment lives (beside the state schema)."""
        return f"{self.prefix}_identity"

    def start(self, counts: dict[str, int], timeout: float = 60.0) -> dict[str, list[Role]]:
        """Start ``counts[roles]`` processes per roles string (``"collect"``, ``"unify,route"``), at once."""
        new: list[Role] = []
        for roles, n in counts.items():
            for i in range(n):
                name = f"{roles.replace(',', '-')}-{i}-{len(self.processes) + len(new)}"
                proc = Role(self.directory / name, env=self.env(roles))
                proc.role = roles
                proc.data_dir.mkdir(parents=True, exist_ok=True)
                new.append(proc)
        with concurrent.futures.ThreadPoolExecutor(len(new)) as pool:
            list(pool.map(lambda p: p.start(timeout), new))
        self.processes += new
        out: dict[str, list[Role]] = {}
        for p in new:
            out.setdefault(p.role, []).append(p)
        return out

    def stop(self) -> None:
        with concurrent.futures.ThreadPoolExecutor(max(1, len(self.processes))) as pool:
            list(pool.map(lambda p: p.stop(), self.processes))

    async def _drop(self) -> None:
        from eventyard.log.jetstream import JetStreamEventLog

        store = PostgresStateStore(self.state_url)
        await store.start()
        try:
            log = JetStreamEventLog(self.log_url, store.dsn)
            await log.start()
            try:
                await log.drop()
            finally:
                await log.close()
            await store.drop()
        finally:
            await store.close()

    def drop(self) -> None:
        """Delete the stream, the log's index and the state schema."""
        asyncio.run(self._drop())


def metric(proc: ServerProcess, name: str) -> float:
    """The sum of a Prometheus counter's samples on one process (0 when absent)."""
    with urllib.request.urlopen(proc.url + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    pattern = re.compile(rf"^{re.escape(name)}(?:_total)?(?:{{[^}}]*}})? ([0-9.e+]+)$", re.M)
    return sum(float(m.group(1)) for m in pattern.finditer(text))


class Load:
    """Threads posting batches to the collect processes in turn, remembering acknowledged ids.

    A thread whose process is gone (connection refused, killed mid-request) moves on to the
    next process: what got no 200 is not counted as acknowledged.
    """

    def __init__(self, targets: list[ServerProcess], tag: str, threads: int = 4, batch: int = 20) -> None:
        self.targets = targets
        self.tag = tag
        self.batch = batch
        self.acked: set[str] = set()
        self.sent: set[str] = set()
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)]
        self.auth = "Basic " + b64encode(f"{WRITE_KEY}:".encode()).decode()

    def _run(self, n: int) -> None:
        seq = 0
        turn = n
        conn: http.client.HTTPConnection | None = None
        deadline = time.monotonic() + 120  # bounded whatever happens
        while not self.stop_event.is_set() and time.monotonic() < deadline:
            ids = [f"{self.tag}-{n}-{seq + i}" for i in range(self.batch)]
            seq += self.batch
            body = json.dumps(
                {
                    "batch": [
                        {"type": "track", "userId": f"u{n}-{i % 7}", "event": "Load", "messageId": m}
                        for i, m in enumerate(ids)
                    ]
                }
            )
            target = self.targets[turn % len(self.targets)]
            with self.lock:
                self.sent.update(ids)
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", target.port, timeout=10)
                conn.request(
                    "POST", "/v1/batch", body, {"Authorization": self.auth, "Content-Type": "application/json"}
                )
                resp = conn.getresponse()
                resp.read()
                if resp.status == 200:
                    with self.lock:
                        self.acked.update(ids)
                else:
                    self.stop_event.wait(0.05)
            except (OSError, http.client.HTTPException):
                if conn is not None:
                    conn.close()
                conn = None
                turn += 1
                self.stop_event.wait(0.02)
        if conn is not None:
            conn.close()

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(15)

    def wait_for_acks(self, n: int, timeout: float = 30.0) -> int:
        return eventually(lambda: len(self.acked), lambda count: count >= n, timeout=timeout, every=0.02)


def delivered_ids(bodies: list[Any]) -> Counter[str]:
    """messageId -> how many times the recorder received it (batch bodies are arrays)."""
    seen: Counter[str] = Counter()
    for body in bodies:
        for event in body if isinstance(body, list) else [body]:
            if isinstance(event, dict) and isinstance(event.get("messageId"), str):
                seen[event["messageId"]] += 1
    return seen


class NatsCluster:
    """Three (or ``size``) nats-server processes with JetStream, clustered on loopback."""

    def __init__(self, directory: Path, size: int = 3) -> None:
        self.directory = directory
        self.size = size
        self.ports = [free_port() for _ in range(size)]
        self.cluster_ports = [free_port() for _ in range(size)]
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * size

    @property
    def url(self) -> str:
        return ",".join(f"nats://127.0.0.1:{p}" for p in self.ports)

    def _config(self, i: int) -> Path:
        routes = ", ".join(f"nats-route://127.0.0.1:{p}" for j, p in enumerate(self.cluster_ports) if j != i)
        store = self.directory / f"n{i}"
        store.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"n{i}.conf"
        path.write_text(
            f'server_name: "ey-n{i}"\nlisten: "127.0.0.1:{self.ports[i]}"\n'
            f'jetstream {{ store_dir: "{store}", max_memory_store: 64MB, max_file_store: 1GB }}\n'
            f'cluster {{ name: "eyc", listen: "127.0.0.1:{self.cluster_ports[i]}", routes: [{routes}] }}\n'
        )
        return path

    def start_node(self, i: int) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self._config(i)
        log = (self.directory / f"n{i}.log").open("ab")
        self.procs[i] = subprocess.Popen([NATS_SERVER, "-c", str(config)], stdout=log, stderr=log)
        log.close()
        ready = eventually(lambda: port_open("127.0.0.1", self.ports[i], 0.2), bool, timeout=15)
        if not ready:
            raise RuntimeError(f"nats-server node {i} did not start: {(self.directory / f'n{i}.log').read_text()}")

    def start(self) -> NatsCluster:
        for i in range(self.size):
            self.start_node(i)
        return self

    def stream_leader(self, stream: str) -> int:
        """The index of the node that leads ``stream`` (the one to kill to test a fail-over)."""

        async def ask() -> str:
            import nats

            nc = await nats.connect(servers=self.url.split(","), connect_timeout=5)
            try:
                info = await nc.jetstream().stream_info(stream)
                return str(info.cluster.leader if info.cluster else "")
            finally:
                await nc.close()

        leader = asyncio.run(ask())
        return int(leader.removeprefix("ey-n")) if leader.startswith("ey-n") else 0

    def kill(self, i: int) -> None:
        proc = self.procs[i]
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        self.procs[i] = None

    def stop(self) -> None:
        for i in range(self.size):
            self.kill(i)

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["ADMIN_TOKEN", "Deployment", "Load", "NatsCluster", "delivered_ids", "metric"]

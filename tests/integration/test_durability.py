"""Acknowledged means durable: kill -9 the server under load and find every acknowledged event."""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading
import time
from base64 import b64encode
from functools import partial
from pathlib import Path

import pytest

from eventyard.testing.server import ServerProcess, read_log
from eventyard.testing.wait import eventually

pytestmark = pytest.mark.slow


class Load:
    """Threads posting batches over keep-alive connections, remembering what got a 200."""

    def __init__(self, server: ServerProcess, tag: str, threads: int = 8, batch: int = 10) -> None:
        self.server = server
        self.tag = tag
        self.batch = batch
        self.acked: set[str] = set()
        self.sent = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)]
        self.auth = "Basic " + b64encode(f"{server.write_key}:".encode()).decode()

    def _run(self, n: int) -> None:
        seq = 0
        conn: http.client.HTTPConnection | None = None
        deadline = time.monotonic() + 30  # bounded whatever happens
        while not self.stop.is_set() and time.monotonic() < deadline:
            ids = [f"{self.tag}-{n}-{seq + i}" for i in range(self.batch)]
            seq += self.batch
            body = json.dumps(
                {"batch": [{"type": "track", "userId": f"u{n}", "event": "Load", "messageId": m} for m in ids]}
            )
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=5)
                conn.request(
                    "POST",
                    "/v1/batch",
                    body,
                    {"Authorization": self.auth, "Content-Type": "application/json"},
                )
                resp = conn.getresponse()
                resp.read()
                with self.lock:
                    self.sent += 1
                if resp.status == 200:
                    with self.lock:
                        self.acked.update(ids)
            except (OSError, http.client.HTTPException):
                if conn is not None:
                    conn.close()
                conn = None
                self.stop.wait(0.01)
        if conn is not None:
            conn.close()

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(10)

    def wait_for_acks(self, n: int) -> None:
        eventually(lambda: len(self.acked), lambda count: count >= n, timeout=20.0, every=0.01)


def stored_ids(data_dir: Path) -> set[str]:
    return {e["messageId"] for e in read_log(data_dir)}


#: A collect-only server with two worker processes appending to the one log (``workers``).
WORKERS = {"EVENTYARD_ROLES": "collect", "EVENTYARD_WORKERS": "2"}


def living(pids: list[int]) -> list[int]:
    """The processes of ``pids`` that still run (not gone, not a zombie)."""
    alive = []
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[0] != "Z":
            alive.append(pid)
    return alive


@pytest.mark.parametrize("env", [{}, WORKERS], ids=["one-process", "two-workers"])
def test_kill_9_under_load_loses_no_acknowledged_event(tmp_path: Path, env: dict[str, str]) -> None:
    server = ServerProcess(tmp_path / "data", env=env)
    server.prepare()
    acked_total: set[str] = set()
    for round_no in range(3):
        server.start()
        workers = eventually(server.children, lambda pids: len(pids) == (1 if env else 0), timeout=10.0)
        assert len(workers) == (1 if env else 0)
        with Load(server, f"r{round_no}") as load:
            load.wait_for_acks(2000 + round_no * 500)
            server.kill()  # SIGKILL (the server and its workers) while requests are in flight
        alive = eventually(partial(living, workers), lambda pids: not pids, timeout=10.0)
        assert not alive, f"worker processes {alive} outlived the server"
        assert len(load.acked) >= 2000, "the load did not get going"
        acked_total |= load.acked
        missing = acked_total - stored_ids(server.data_dir)
        assert not missing, f"{len(missing)} acknowledged events lost after kill -9 (round {round_no})"
    # The log is intact: the server starts again and keeps accepting.
    server.start()
    try:
        with Load(server, "after", threads=2) as load:
            load.wait_for_acks(100)
        assert load.acked <= stored_ids(server.data_dir)
    finally:
        server.stop()


def test_a_worker_that_dies_stops_the_server(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", env=WORKERS)
    server.prepare()
    server.start()
    try:
        pids = eventually(server.children, lambda found: len(found) == 1, timeout=10.0)
        assert len(pids) == 1
        with Load(server, "w", threads=4) as load:
            load.wait_for_acks(200)
        assert load.acked <= stored_ids(server.data_dir)
        assert server.proc is not None
        os.kill(pids[0], signal.SIGKILL)
        assert server.proc.wait(30) == 1  # exits with an error; a supervisor restarts it whole
    finally:
        server.stop()

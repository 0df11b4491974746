"""``/metrics`` of a collect server with two workers counts every worker's events."""

from __future__ import annotations

import json
import threading
import urllib.request
from base64 import b64encode
from pathlib import Path

import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

from eventyard.quality.worker_metrics import snapshot_dir
from eventyard.testing.server import ServerProcess
from eventyard.testing.wait import eventually

pytestmark = pytest.mark.slow


def received(server: ServerProcess) -> float:
    """``eventyard_events_received_total`` summed over sources, from one scrape."""
    with urllib.request.urlopen(server.url + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "eventyard_events_received_total"
    )


def own_count(snapshot: Path) -> float:
    """The events one worker counted itself, from the snapshot it published."""
    families = msgspec.msgpack.decode(snapshot.read_bytes())
    return sum(value for name, samples in families if name == "eventyard_events_received" for _, _, value in samples)


def test_every_scrape_counts_the_events_of_both_workers(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", env={"EVENTYARD_ROLES": "collect", "EVENTYARD_WORKERS": "2"})
    auth = "Basic " + b64encode(f"{server.write_key}:".encode()).decode()
    accepted: list[int] = []

    def send(thread: int) -> None:
        for n in range(50):  # a new connection each time, so both workers take some
            events = [
                {"type": "track", "userId": f"u{thread}", "event": "E", "messageId": f"{thread}-{n}-{i}"}
                for i in range(4)
            ]
            request = urllib.request.Request(
                server.url + "/v1/batch",
                json.dumps({"batch": events}).encode(),
                {"Authorization": auth, "Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=10) as resp:
                if resp.status == 200:
                    accepted.append(len(events))

    with server:
        # Both processes are up once each has written its first snapshot.
        snapshots = snapshot_dir(server.data_dir, server.port)
        paths = [snapshots / "worker-0", snapshots / "worker-1"]
        assert eventually(lambda: all(p.exists() for p in paths), bool, timeout=20.0)
        threads = [threading.Thread(target=send, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        total = sum(accepted)
        assert total == 8 * 50 * 4
        # Each worker rewrites its snapshot every second; once both have published their
        # counts, every scrape, whichever worker answers it, shows the whole count.
        shares = eventually(lambda: [own_count(p) for p in paths], lambda n: sum(n) == total, timeout=10.0)
        assert [received(server) for _ in range(8)] == [total] * 8
        # ... and both workers took a share (else this test would prove nothing).
        assert sum(shares) == total and min(shares) > 0, shares

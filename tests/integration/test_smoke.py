"""The real server starts, takes an event, and stores it."""

from __future__ import annotations

import json
import urllib.request
from base64 import b64encode

import pytest

from eventyard.testing.server import ServerProcess, read_log

pytestmark = pytest.mark.slow


def test_server_stores_a_tracked_event(server: ServerProcess) -> None:
    auth = b64encode(f"{server.write_key}:".encode()).decode()
    req = urllib.request.Request(
        server.url + "/v1/track",
        data=json.dumps({"userId": "u1", "event": "Signed Up"}).encode(),
        headers={"Authorization": f"Basic {auth}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 200
    events = read_log(server.data_dir)
    assert [e["event"] for e in events] == ["Signed Up"]

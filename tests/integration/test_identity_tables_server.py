"""The identity tables of a real `eventyard serve`, across a kill -9: events sent, the server
killed at once, started again; the warehouse ends up with every identifier and merge, once."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from eventyard.testing.server import ServerProcess
from eventyard.testing.wait import eventually

pytestmark = pytest.mark.slow


def workspace(write_key: str, warehouse: Path) -> str:
    return f"""\
workspaces:
  - name: default
    sources:
      - name: default
        write_key: {write_key}
    destinations:
      - name: wh
        type: duckdb
        settings: {{path: "{warehouse}", batch_age_seconds: 0.2, schemas: {{default: web}}}}
    connections:
      - {{source: default, destination: wh}}
"""


def post(server: ServerProcess, path: str, body: Any, auth: str) -> Any:
    req = urllib.request.Request(
        server.url + path,
        data=json.dumps(body).encode(),
        headers={"Authorization": auth, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def send(server: ServerProcess, events: list[dict[str, Any]]) -> None:
    auth = "Basic " + base64.b64encode(f"{server.write_key}:".encode()).decode()
    post(server, "/v1/batch", {"batch": events}, auth)


def sql(server: ServerProcess, text: str) -> list[list[Any]]:
    try:
        found = post(server, "/api/v1/sql", {"sql": text, "destination": "wh"}, f"Bearer {server.admin_token}")
    except urllib.error.HTTPError as exc:
        exc.close()  # the unread answer holds the connection's socket
        return []  # the tables are not there yet
    rows: list[list[Any]] = found["rows"]
    return rows


def test_identity_tables_are_complete_after_a_kill(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data")
    server.prepare(workspace(server.write_key, tmp_path / "w.duckdb"))
    server.start(timeout=120)
    try:
        send(server, [{"type": "page", "anonymousId": f"a{i}", "name": "Home"} for i in range(40)])
        eventually(lambda: sql(server, "SELECT count(*) FROM eventyard_identity.identifiers"), lambda r: r == [[40]])
        # each visitor signs in; the second 20 also on a second device: merges
        signups = [{"type": "identify", "anonymousId": f"a{i}", "userId": f"u{i}"} for i in range(40)]
        devices = [{"type": "page", "anonymousId": f"b{i}", "name": "App"} for i in range(20, 40)]
        send(server, signups + devices)
        send(server, [{"type": "identify", "anonymousId": f"b{i}", "userId": f"u{i}"} for i in range(20, 40)])
        server.kill()  # whatever the pipeline and the feed were doing
        server.start(timeout=120)
        expected = [["anonymous_id", 60], ["user_id", 40]]
        query = "SELECT identifier_type, count(*) FROM eventyard_identity.identifiers GROUP BY 1 ORDER BY 1"
        eventually(lambda: sql(server, query), lambda r: r == expected, timeout=60)
        eventually(lambda: sql(server, "SELECT count(*) FROM eventyard_identity.merges"), lambda r: r == [[20]])
        # one profile per user, whichever device's profile each event was stamped with
        pages = (
            "SELECT count(DISTINCT p.canonical_profile_id), count(*) FROM web.pages t "
            "JOIN eventyard_identity.profiles p ON p.profile_id = t.context_eventyard_profile_id"
        )
        eventually(lambda: sql(server, pages), lambda r: r == [[40, 60]], timeout=60)
        owners = sql(
            server,
            "SELECT count(*) FROM eventyard_identity.identifiers i JOIN eventyard_identity.identifiers u "
            "ON u.identifier_type = 'user_id' AND i.identifier_type = 'anonymous_id' "
            "AND substr(i.identifier_value, 2) = substr(u.identifier_value, 2) AND i.profile_id = u.profile_id",
        )
        assert owners == [[60]]  # every device belongs to its user's profile
    finally:
        server.stop()

"""`eventyard regulate` against a real server: delete with --wait, the report, list, suppress and
unsuppress, and clear errors for bad input."""

from __future__ import annotations

import json
import re
import urllib.request
from base64 import b64encode
from pathlib import Path

import pytest

from eventyard.testing.server import ServerProcess, read_log
from eventyard.testing.wait import eventually

pytestmark = pytest.mark.slow


def send(server: ServerProcess, *users: str, prefix: str = "m") -> int:
    batch = [
        {"type": "track", "event": "Viewed", "userId": u, "messageId": f"{prefix}-{i}"} for i, u in enumerate(users)
    ]
    auth = "Basic " + b64encode(f"{server.write_key}:".encode()).decode()
    req = urllib.request.Request(
        server.url + "/v1/batch",
        data=json.dumps({"batch": batch}).encode(),
        headers={"Authorization": auth, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return int(resp.status)


def users_in_log(server: ServerProcess) -> list[str]:
    return [e["userId"] for e in read_log(server.data_dir)]


def test_regulate_deletes_reports_and_suppresses(server: ServerProcess, tmp_path: Path) -> None:
    assert send(server, "ana", "bob", "ana") == 200
    eventually(lambda: users_in_log(server), lambda users: sorted(users) == ["ana", "ana", "bob"])

    done = server.cli("regulate", "delete", "ana", "--suppress", "--wait", "--timeout", "60", "--url", server.url)
    assert done.returncode == 0, done.stderr + done.stdout
    reg_id = re.search(r"regulation (reg_\w+)", done.stdout)
    assert reg_id is not None, done.stdout
    assert "SUPPRESS_WITH_DELETE" in done.stdout and "FINISHED" in done.stdout
    assert users_in_log(server) == ["bob"]

    status = server.cli("regulate", "status", reg_id.group(1), "--json", "--url", server.url)
    report = json.loads(status.stdout)
    assert report["overallStatus"] == "FINISHED"
    assert report["stores"]["log"]["removed"]["ingest_records_rewritten"] == 1
    assert report["stores"]["suppression"]["status"] == "FINISHED"
    table = server.cli("regulate", "status", reg_id.group(1), "--url", server.url)
    assert table.returncode == 0 and "what was done where" in table.stdout and "identity" in table.stdout

    eventually(lambda: send(server, "ana", prefix="late") and users_in_log(server), lambda u: u == ["bob"])
    listing = server.cli("regulate", "list", "--json", "--url", server.url)
    assert [r["id"] for r in json.loads(listing.stdout)] == [reg_id.group(1)]

    ids = tmp_path / "ids.txt"
    ids.write_text("ana\n\nzoe\n")
    lifted = server.cli("regulate", "unsuppress", "--file", str(ids), "--wait", "--url", server.url)
    assert lifted.returncode == 0 and "UNSUPPRESS" in lifted.stdout
    eventually(lambda: send(server, "ana", prefix="back") and users_in_log(server), lambda u: "ana" in u)


def test_regulate_explains_bad_input(server: ServerProcess, tmp_path: Path) -> None:
    none = server.cli("regulate", "delete", "--url", server.url)
    assert none.returncode == 2 and "at least one user id" in none.stderr
    many = tmp_path / "many.txt"
    many.write_text("\n".join(f"u{i}" for i in range(5001)))
    too_many = server.cli("regulate", "suppress", "--file", str(many), "--url", server.url)
    assert too_many.returncode == 2 and "at most 5000" in too_many.stderr
    missing = server.cli("regulate", "status", "reg_nope", "--url", server.url)
    assert missing.returncode == 2 and "404: no regulation 'reg_nope'" in missing.stderr
    unreadable = server.cli("regulate", "delete", "--file", str(tmp_path / "absent.txt"), "--url", server.url)
    assert unreadable.returncode == 2 and "cannot read" in unreadable.stderr

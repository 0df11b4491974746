"""The audit trail of a real server: the command line's calls, the Profile API, `eventyard audit
list|export` through the server."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from base64 import b64encode
from pathlib import Path
from typing import Any

import pytest

from eventyard.control import audit
from eventyard.testing.server import ServerProcess

pytestmark = pytest.mark.slow


def profile_api(server: ServerProcess, token: str, path: str) -> int:
    auth = b64encode(f"{token}:".encode()).decode()
    req = urllib.request.Request(server.url + path, headers={"Authorization": f"Basic {auth}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        exc.close()  # the unread answer holds the connection's socket
        return int(exc.code)


def entries(server: ServerProcess, query: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = server.admin_get(f"/api/v1/audit?{query}")["data"]
    return data


def test_cli_calls_and_profile_api_reads_are_recorded_and_exported(server: ServerProcess, tmp_path: Path) -> None:
    base = ["--url", server.url, "--token", server.admin_token]
    shown = server.cli("profile", "show", "email:ana@example.com", *base)
    assert shown.returncode != 0 and "404" in shown.stderr  # nobody yet: the attempt is recorded
    made = server.cli("profile", "token", "--name", "support", *base)
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip().splitlines()[-1]
    assert profile_api(server, secret, "/v1/spaces/default/collections/users/profiles/user_id:ana/traits") == 404

    [apply] = entries(server, "action=config.apply")  # the test server's own setup
    assert apply["actor"] == audit.cli_actor() and apply["origin"] == audit.cli_origin()
    show, api_read = entries(server, "action=profile.read")
    assert (show["target"], show["detail"]["status"], show["origin"]) == ("email:ana@example.com", 404, "127.0.0.1")
    assert show["actor"].endswith(":admin (EVENTYARD_ADMIN_TOKEN)")
    assert show["detail"]["agent"].startswith("eventyard-cli/") and audit.cli_actor() in show["detail"]["agent"]
    assert api_read["actor"].endswith(":support") and api_read["target"] == "user_id:ana"
    [token] = entries(server, "action=token.")
    assert api_read["actor"] == f"{token['target']}:support"
    assert secret not in json.dumps(entries(server, "limit=1000"))

    listed = server.cli("audit", "list", "--action", "profile.", "--json", *base)
    assert listed.returncode == 0, listed.stderr
    assert [e["action"] for e in json.loads(listed.stdout)["data"]] == ["profile.read", "profile.read"]
    out = tmp_path / "trail.jsonl"
    exported = server.cli("audit", "export", "-o", str(out), *base)
    assert exported.returncode == 0, exported.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    # the export holds its own entry: it is written before the first line is read
    assert [e["action"] for e in lines][-2:] == ["audit.read", "audit.export"]
    assert lines[-1]["detail"]["agent"].startswith("eventyard-cli/")
    bad = server.cli("audit", "list", "--since", "soon", *base)
    assert bad.returncode == 2 and "`since` must be an age" in bad.stderr

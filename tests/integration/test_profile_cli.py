"""`eventyard profile ...` against a real server, with events sent by the official Segment SDK's
wire format over HTTP and the Profile API called with a profile token."""

from __future__ import annotations

import json
import urllib.request
from base64 import b64encode
from pathlib import Path
from typing import Any

import pytest

from eventyard.testing.server import ServerProcess
from eventyard.testing.wait import eventually

pytestmark = pytest.mark.slow


def post(server: ServerProcess, path: str, body: dict[str, Any]) -> None:
    auth = b64encode(f"{server.write_key}:".encode()).decode()
    req = urllib.request.Request(
        server.url + path,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Basic {auth}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


def profile_api(server: ServerProcess, token: str, path: str) -> tuple[int, Any]:
    auth = b64encode(f"{token}:".encode()).decode()
    req = urllib.request.Request(server.url + path, headers={"Authorization": f"Basic {auth}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_profile_show_explain_split_and_the_profile_api(server: ServerProcess, tmp_path: Path) -> None:
    post(server, "/v1/page", {"anonymousId": "a-1", "name": "Pricing", "timestamp": "2026-03-01T09:00:00Z"})
    post(server, "/v1/identify", {"userId": "ana", "traits": {"email": "ana@example.com", "name": "Ana"}})
    post(server, "/v1/track", {"userId": "ana", "anonymousId": "a-1", "event": "Signed Up"})
    base = ["--url", server.url, "--token", server.admin_token]

    def explained() -> Any:
        done = server.cli("profile", "explain", "email:ana@example.com", "--json", *base)
        return json.loads(done.stdout) if done.returncode == 0 else None

    data = eventually(explained, lambda d: d is not None and len(d["merges"]) == 1)
    assert data is not None and len(data["merges"]) == 1
    merge = data["merges"][0]

    shown = server.cli("profile", "show", "email:ana@example.com", *base)
    assert shown.returncode == 0, shown.stderr
    assert "anonymous_id" in shown.stdout and "Ana" in shown.stdout and "Signed Up" in shown.stdout
    text = server.cli("profile", "explain", "user_id:ana", *base)
    assert text.returncode == 0, text.stderr
    assert f"#{merge['id']} " in text.stdout and "by shared_identifier" in text.stdout
    assert f"came with merge #{merge['id']}" in text.stdout

    token = server.cli("profile", "token", "--name", "crm", *base)
    assert token.returncode == 0, token.stderr
    secret = token.stdout.strip().splitlines()[-1]
    status, body = profile_api(server, secret, "/v1/spaces/default/collections/users/profiles/user_id:ana/traits")
    assert status == 200 and body["traits"] == {"email": "ana@example.com", "name": "Ana"}
    status, body = profile_api(server, secret, "/v1/spaces/default/collections/users/profiles/user_id:zed/traits")
    assert (status, body["error"]["code"]) == (404, "not_found")

    split = server.cli("profile", "split", "user_id:ana", str(merge["id"]), *base)
    assert split.returncode == 0, split.stderr
    assert "restored" in split.stdout and "kept" in split.stdout
    again = server.cli("profile", "split", "user_id:ana", str(merge["id"]), *base)
    assert again.returncode != 0 and "already split" in again.stderr

    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text("blocked_values: [guest]\nmax_merges: 10\n")
    rules = server.cli("profile", "rules", "-f", str(rules_file), *base)
    assert rules.returncode == 0 and "max_merges: 10" in rules.stdout and "- guest" in rules.stdout
    status_cmd = server.cli("profile", "status", *base)
    assert status_cmd.returncode == 0 and "profiles" in status_cmd.stdout
    missing = server.cli("profile", "show", "user_id:nobody", *base)
    assert missing.returncode != 0 and "404" in missing.stderr

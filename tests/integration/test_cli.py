"""The command line: first start, apply (diff, idempotence, errors with positions), tail, send."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from base64 import b64encode
from pathlib import Path

import pytest

from eventyard.testing.server import ServerProcess, free_port, read_log
from eventyard.testing.wait import eventually

pytestmark = pytest.mark.slow


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("EVENTYARD_")}
    return subprocess.run(
        [sys.executable, "-m", "eventyard.cli.main", *args],
        env={**base, "COLUMNS": "200", **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_first_start_creates_a_workspace_and_prints_how_to_send(tmp_path: Path) -> None:
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("EVENTYARD_")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "eventyard.cli.main",
            "serve",
            "--data-dir",
            str(tmp_path / "d"),
            "--port",
            str(port),
        ],
        env={**base, "COLUMNS": "250"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines: list[str] = []
        assert proc.stdout is not None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "Uvicorn running" in line or not line:
                break
        out = "".join(lines)
        key = re.search(r"write key: (\S+)", out)
        token = re.search(r"admin token\s+(eyt_\S+)", out)
        assert key and token, out
        assert "curl -u" in out and f"127.0.0.1:{port}/v1/track" in out
        assert (tmp_path / "d" / "admin_token").read_text().strip() == token.group(1)
        # the printed curl example works as printed
        curl = re.search(r"(curl -u .*)", out)
        assert curl
        auth = b64encode(f"{key.group(1)}:".encode()).decode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/track",
            data=b'{"userId":"user-1","event":"Signed Up"}',
            headers={"Authorization": f"Basic {auth}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.status == 200
        with urllib.request.urlopen(
            urllib.request.Request(
                f"http://127.0.0.1:{port}/api/v1/sources",
                headers={"Authorization": f"Bearer {token.group(1)}"},
            ),
            timeout=5,
        ) as resp:
            assert json.loads(resp.read())["data"][0]["writeKey"] == key.group(1)
    finally:
        proc.terminate()
        proc.wait(15)
        if proc.stdout:
            proc.stdout.close()


WORKSPACE = """\
workspaces:
  - name: acme
    sources:
      - name: web
        write_key: acme-web-key-1
      - name: ios
        enabled: false
        limits:
          max_event_bytes: 1024
          max_request_bytes: 4096
          max_batch_events: 10
"""


def test_apply_shows_the_diff_and_is_idempotent(tmp_path: Path) -> None:
    f = tmp_path / "workspace.yaml"
    f.write_text(WORKSPACE)
    data = ["--data-dir", str(tmp_path / "d")]
    dry = cli("apply", "-f", str(f), *data, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "+ workspace acme" in dry.stdout and "+ source acme/web" in dry.stdout
    assert "+ source acme/ios: disabled" in dry.stdout
    assert "dry run" in dry.stdout

    first = cli("apply", "-f", str(f), *data)
    assert first.returncode == 0, first.stderr
    assert "applied" in first.stdout
    assert "acme/web  write key: acme-web-key-1" in first.stdout

    again = cli("apply", "-f", str(f), *data)
    assert again.returncode == 0
    assert "no changes" in again.stdout

    f.write_text(
        WORKSPACE.replace("enabled: false", "enabled: true").replace("max_batch_events: 10", "max_batch_events: 20")
    )
    changed = cli("apply", "-f", str(f), *data)
    assert "~ source acme/ios: enabled false -> true; max_batch_events 10 -> 20" in changed.stdout


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("workspaces:\n  - name: acme\n    sourcez: []\n", r"workspace\.yaml:3:5: .*unknown field `sourcez`"),
        (
            "workspaces:\n  - name: acme\n    sources:\n      - name: web\n        enabled: perhaps\n",
            r"workspace\.yaml:5:18: Expected `bool`, got `str`",
        ),
        (
            "workspaces:\n  - name: acme\n    sources:\n      - name: web\n        limits: {max_event_bytes: 0}\n",
            r"workspace\.yaml:5:17: `max_event_bytes` must be a positive integer",
        ),
        ("workspaces: [\n", r"workspace\.yaml:2:1: not valid YAML"),
        ("workspaces:\n  - name: acme\n    sources:\n      - name: a\n      - name: a\n", r"declared twice"),
    ],
)
def test_apply_errors_name_the_position(tmp_path: Path, text: str, expected: str) -> None:
    f = tmp_path / "workspace.yaml"
    f.write_text(text)
    result = cli("apply", "-f", str(f), "--data-dir", str(tmp_path / "d"), "--yes")
    assert result.returncode == 2
    assert re.search(expected, result.stderr.replace("\n", " ")), result.stderr
    assert not (tmp_path / "d" / "state.sqlite3").exists() or "applied" not in result.stdout


def test_apply_to_a_running_server_takes_effect_without_restart(server: ServerProcess, tmp_path: Path) -> None:
    f = tmp_path / "more.yaml"
    f.write_text(
        "workspaces:\n  - name: default\n    sources:\n      - name: mobile\n        write_key: mobile-key-123\n"
    )
    assert server.cli("apply", "-f", str(f), "--data-dir", str(server.data_dir), "--yes").returncode == 0
    auth = b64encode(b"mobile-key-123:").decode()

    def post() -> int:
        req = urllib.request.Request(
            server.url + "/v1/track",
            data=b'{"userId":"u","event":"From mobile"}',
            headers={"Authorization": f"Basic {auth}"},
        )
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            exc.close()  # the unread answer holds the connection's socket
            return exc.code

    assert eventually(post, lambda status: status == 200, timeout=10, every=0.2) == 200


def test_unknown_setting_in_the_environment_is_an_error(tmp_path: Path) -> None:
    result = cli("apply", "-f", str(tmp_path / "x.yaml"), env={"EVENTYARD_PORTT": "1"})
    assert result.returncode == 2
    assert "unknown setting EVENTYARD_PORTT" in result.stderr


def test_tail_json_shows_events_and_refusals(server: ServerProcess) -> None:
    out: list[str] = []

    def run_tail() -> None:
        result = server.cli(
            "tail",
            "--url",
            server.url,
            "--json",
            "--recent",
            "10",
            "--limit",
            "3",
            "--token",
            server.admin_token,
        )
        out.append(result.stdout)
        out.append(result.stderr)

    # --recent makes tail start from the beginning of this fresh log, so it sees the events
    # whether it connects before or after they are sent.
    t = threading.Thread(target=run_tail)
    t.start()
    for args in (
        ("track", "--event", "Signed Up", "--user-id", "u1"),
        ("page", "--name", "Home", "--anonymous-id", "a1"),
        ("track", "--user-id", "u1"),  # refused: no event name
    ):
        server.cli("send", *args, "--write-key", server.write_key, "--url", server.url)
    t.join(30)
    lines = [json.loads(line) for line in out[0].splitlines() if line.strip()]
    assert [item["kind"] for item in lines] == ["event", "event", "rejected"], out
    assert lines[0]["event"]["event"] == "Signed Up"
    assert lines[2]["rejection"]["reason"] == "missing_event"


def test_tail_filters_by_type_and_event(server: ServerProcess) -> None:
    for name in ("A", "B", "A"):
        server.cli(
            "send",
            "track",
            "--event",
            name,
            "--user-id",
            "u",
            "--write-key",
            server.write_key,
            "--url",
            server.url,
        )
    server.cli("send", "page", "--name", "P", "--user-id", "u", "--write-key", server.write_key, "--url", server.url)
    result = server.cli(
        "tail",
        "--url",
        server.url,
        "--json",
        "--recent",
        "10",
        "--limit",
        "2",
        "--type",
        "track",
        "--event",
        "A",
        "--token",
        server.admin_token,
    )
    items = [json.loads(line) for line in result.stdout.splitlines()]
    assert [i["event"]["event"] for i in items] == ["A", "A"]
    assert len(read_log(server.data_dir)) == 4


def test_send_reports_errors_clearly(server: ServerProcess) -> None:
    result = server.cli("send", "track", "--user-id", "u", "--event", "E", "--write-key", "wrong", "--url", server.url)
    assert result.returncode == 2
    assert "401" in result.stderr and "invalid_write_key" in result.stderr
    bad = server.cli("send", "track", "--user-id", "u", "--event", "E", "--properties", "{nope", "-k", server.write_key)
    assert bad.returncode == 2 and "not valid JSON" in bad.stderr

"""Run a real ``eventyard serve`` in a subprocess, on a free loopback port, for tests and benchmarks.

The data directory is prepared with ``eventyard apply`` so the write key is known before the
server starts; the admin token is preset through ``EVENTYARD_ADMIN_TOKEN``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

WRITE_KEY = "test-write-key-0001"
ADMIN_TOKEN = "eyt_test-admin-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def stop_process(proc: subprocess.Popen[Any] | None, grace: float = 15.0) -> None:
    """SIGTERM, wait up to ``grace`` seconds for a clean exit, then SIGKILL."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def workspace_yaml(write_key: str = WRITE_KEY, extra_sources: str = "") -> str:
    return (
        "workspaces:\n"
        "  - name: default\n"
        "    sources:\n"
        "      - name: default\n"
        f"        write_key: {write_key}\n" + extra_sources
    )


@dataclass
class ServerProcess:
    data_dir: Path
    port: int = field(default_factory=free_port)
    write_key: str = WRITE_KEY
    admin_token: str = ADMIN_TOKEN
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTYARD_")}
        env["EVENTYARD_ADMIN_TOKEN"] = self.admin_token
        # Tests poll the control API in tight loops; the rate limit has tests of its own.
        env["EVENTYARD_ADMIN_RATE_LIMIT_PER_SECOND"] = "0"
        env.update(self.env)
        return env

    def cli(self, *args: str, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run an ``eventyard`` command against this server's data directory."""
        return subprocess.run(
            [sys.executable, "-m", "eventyard.cli.main", *args],
            env=self._env(),
            input=input_text,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def prepare(self, workspace: str | None = None) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        ws = self.data_dir.parent / f"{self.data_dir.name}-workspace.yaml"
        ws.write_text(workspace or workspace_yaml(self.write_key))
        done = self.cli("apply", "-f", str(ws), "--data-dir", str(self.data_dir), "--yes")
        if done.returncode != 0:
            raise RuntimeError(f"eventyard apply failed: {done.stderr}{done.stdout}")

    def start(self, timeout: float = 20.0) -> None:
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-server.log"
        out = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "eventyard.cli.main",
                "serve",
                "--data-dir",
                str(self.data_dir),
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            env=self._env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited at start:\n{self.log_path.read_text()}")
            try:
                with urllib.request.urlopen(self.url + "/ready", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"the server did not become ready:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        stop_process(self.proc)

    def children(self) -> list[int]:
        """Process ids of the server's child processes (its ``workers``; Linux)."""
        if self.proc is None:
            return []
        try:
            return [
                int(pid) for pid in Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
            ]
        except OSError:
            return []

    def kill(self) -> None:
        """SIGKILL to the server and its worker processes: no shutdown code runs, as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            children = self.children()
            self.proc.kill()
            for pid in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.proc.wait(10)

    def admin_get(self, path: str) -> Any:
        req = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {self.admin_token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return msgspec.json.decode(resp.read())

    def __enter__(self) -> ServerProcess:
        self.prepare()
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def read_log(data_dir: Path, topic: str = "ingest") -> list[dict[str, Any]]:
    """Every record of a topic in the embedded log of ``data_dir``, decoded, in order."""
    import sqlite3

    conn = sqlite3.connect(data_dir / "log.sqlite3")
    try:
        rows = conn.execute("SELECT key, payload FROM records WHERE topic = ? ORDER BY id", (topic,)).fetchall()
    finally:
        conn.close()
    if topic == "ingest":
        from eventyard.spec.stored import load

        return [{"_key": key, **event} for key, payload in rows for event in load(payload)]
    return [{"_key": key, **msgspec.json.decode(payload)} for key, payload in rows]

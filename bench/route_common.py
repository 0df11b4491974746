"""Shared parts of the Route benchmarks (``route_latency.py``, ``route_backlog.py``).

* **Events**: realistic browser-SDK events (600-900 bytes) from ``ingest.EventGenerator`` with a
  fixed seed, pre-encoded once as templates; each sent event gets the messageId
  ``rb-<seq>-<send time in ns>``, so the receiver learns the sequence number (age) and the send
  time of every event it gets without any shared state.
* **Sink**: a minimal aiohttp server (its own process: ``python bench/route_common.py sink``)
  that accepts a single event, a JSON array (webhook batch mode) or a ``{"batch": [...]}`` body,
  records ``(seq, arrival - send time)`` per event in flat arrays (8 bytes each, no bodies
  kept), answers a settable status (200, or 503 for "down"), and serves its numbers on
  ``/_stats``, ``/_seqs`` and ``/_lat``.
* **Load**: a fixed-rate generator (one batch every ``interval`` on an absolute schedule, sends
  never wait for earlier answers) and a "blast" loader (as fast as the server takes it).
* **Server**: ``eventyard serve`` through ``eventyard.testing.server`` with a webhook
  destination connected to the default source; roles are set through a config file.

Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import base64
import contextlib
import json
import os
import platform
import re
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from eventyard.testing.server import stop_process

BENCH_DIR = Path(__file__).resolve().parent
SEED = 20261129
MID_PLACEHOLDER = "@@MID@@"

# ----------------------------------------------------------------------------- events


class Feed:
    """Batch bodies for ``/v1/batch`` (or the sink) from seeded, pre-encoded event templates."""

    def __init__(self, seed: int = SEED, templates: int = 2000) -> None:
        sys.path.insert(0, str(BENCH_DIR))
        from ingest import EventGenerator  # the ingest benchmark's generator: same event shapes

        gen = EventGenerator(seed)
        self.parts: list[tuple[bytes, bytes]] = []
        for _ in range(templates):
            event = gen.sized_event()
            event.pop("sentAt", None)
            event["messageId"] = MID_PLACEHOLDER
            raw = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
            head, tail = raw.split(MID_PLACEHOLDER.encode())
            self.parts.append((head, tail))
        self.mean_event_bytes = sum(len(h) + len(t) + 30 for h, t in self.parts) / len(self.parts)

    def events(self, first_seq: int, n: int, sent_ns: int) -> list[bytes]:
        parts = self.parts
        k = len(parts)
        out = []
        for seq in range(first_seq, first_seq + n):
            head, tail = parts[seq % k]
            out.append(b"%srb-%d-%d%s" % (head, seq, sent_ns, tail))
        return out

    def batch_body(self, first_seq: int, n: int, sent_ns: int | None = None) -> bytes:
        """A ``/v1/batch`` body: ``{"batch": [...], "sentAt": now}``."""
        sent_ns = time.time_ns() if sent_ns is None else sent_ns
        sent_at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sent_ns // 1_000_000_000))
        sent_at += f".{sent_ns // 1_000_000 % 1000:03d}Z"
        return b'{"batch":[%s],"sentAt":"%s"}' % (b",".join(self.events(first_seq, n, sent_ns)), sent_at.encode())

    def array_body(self, first_seq: int, n: int, sent_ns: int | None = None) -> bytes:
        """A JSON array, as the webhook destination sends in batch mode."""
        sent_ns = time.time_ns() if sent_ns is None else sent_ns
        return b"[" + b",".join(self.events(first_seq, n, sent_ns)) + b"]"


def basic_auth(write_key: str) -> str:
    return "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()


# ------------------------------------------------------------------------------- sink


class _Msg(msgspec.Struct):
    messageId: str = ""


class _Envelope(msgspec.Struct):
    batch: list[_Msg] | None = None
    messageId: str = ""


class SinkState:
    def __init__(self, status: int) -> None:
        self.status = status
        self.reset()

    def reset(self) -> None:
        self.seqs = array.array("q")
        self.lat_us = array.array("q")
        self.requests = 0
        self.refused_requests = 0
        self.events = 0
        self.first_ns = 0
        self.last_ns = 0
        self.max_batch = 0


def run_sink(port: int, status: int) -> None:
    import uvloop
    from aiohttp import web

    state = SinkState(status)
    dec_list = msgspec.json.Decoder(list[_Msg])
    dec_env = msgspec.json.Decoder(_Envelope)

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        if path.startswith("/_"):
            return control(request, path)
        body = await request.read()
        now = time.time_ns()
        if state.status != 200:
            state.refused_requests += 1
            return web.Response(status=state.status, body=b"down")
        try:
            if body[:1] == b"[":
                items = dec_list.decode(body)
            else:
                env = dec_env.decode(body)
                items = env.batch if env.batch is not None else [_Msg(env.messageId)]
        except msgspec.DecodeError:
            return web.Response(status=400, body=b"not json")
        state.requests += 1
        state.max_batch = max(state.max_batch, len(items))
        if not state.first_ns:
            state.first_ns = now
        state.last_ns = now
        seqs, lat = state.seqs, state.lat_us
        n = 0
        for item in items:
            parts = item.messageId.split("-")
            if len(parts) == 3 and parts[0] == "rb":
                seqs.append(int(parts[1]))
                lat.append((now - int(parts[2])) // 1000)
                n += 1
        state.events += n
        return web.Response(status=200, body=b'{"ok":true}')

    def control(request: web.BaseRequest, path: str) -> web.Response:
        if path == "/_stats":
            stats = {
                k: getattr(state, k)
                for k in ("status", "requests", "refused_requests", "events", "first_ns", "last_ns", "max_batch")
            }
            return web.Response(body=json.dumps(stats).encode(), content_type="application/json")
        if path == "/_seqs":
            return web.Response(body=state.seqs.tobytes())
        if path == "/_lat":
            return web.Response(body=state.lat_us.tobytes())
        if path == "/_status":
            state.status = int(request.query["code"])
            return web.Response(body=b"ok")
        if path == "/_reset":
            state.reset()
            return web.Response(body=b"ok")
        return web.Response(status=404)

    async def main() -> None:
        server = web.Server(handle, access_log=None)
        runner = web.ServerRunner(server, handle_signals=True)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, reuse_address=True).start()
        print("sink ready", flush=True)
        await asyncio.Event().wait()  # until SIGTERM (the parent stops us; aiohttp raises GracefulExit)

    uvloop.install()
    with contextlib.suppress(KeyboardInterrupt, SystemExit):
        asyncio.run(main())


@dataclass
class SinkStats:
    status: int
    requests: int
    refused_requests: int
    events: int
    first_ns: int
    last_ns: int
    max_batch: int


class Sink:
    """The sink process, seen from the benchmark."""

    def __init__(self, port: int, workdir: Path, status: int = 200) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.status = status
        self.log_path = workdir / f"sink-{port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> None:
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, str(Path(__file__)), "sink", "--port", str(self.port), "--status", str(self.status)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the sink exited at start:\n{self.log_path.read_text()}")
            with contextlib.suppress(OSError):
                self.stats()
                return
            time.sleep(0.05)
        raise RuntimeError(f"the sink did not start:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        stop_process(self.proc, grace=10)

    def _get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=30) as resp:
            data: bytes = resp.read()
            return data

    def stats(self) -> SinkStats:
        return SinkStats(**json.loads(self._get("/_stats")))

    def seqs(self) -> array.array[int]:
        out = array.array("q")
        out.frombytes(self._get("/_seqs"))
        return out

    def latencies_ms(self) -> tuple[array.array[int], list[float]]:
        """(seqs, latency in ms) in arrival order."""
        lat = array.array("q")
        lat.frombytes(self._get("/_lat"))
        seqs = self.seqs()  # fetched after: both only grow, so its first len(lat) entries match
        return seqs[: len(lat)], [x / 1000 for x in lat]

    def set_status(self, code: int) -> None:
        self._get(f"/_status?code={code}")

    def reset(self) -> None:
        self._get("/_reset")


# ---------------------------------------------------------------------------- load


@dataclass
class LoadResult:
    events_sent: int = 0
    events_acked: int = 0
    requests_failed: int = 0
    seconds: float = 0.0
    ack_ms: list[float] = field(default_factory=list)
    #: How late the generator sent, compared with its schedule (fixed rate only).
    max_behind_ms: float = 0.0
    max_in_flight: int = 0
    errors: list[str] = field(default_factory=list)


async def _post(session: Any, url: str, body: bytes, headers: dict[str, str], result: LoadResult, n: int) -> None:
    t0 = time.perf_counter()
    try:
        async with session.post(url, data=body, headers=headers) as resp:
            await resp.read()
            if resp.status >= 300:
                result.requests_failed += 1
                if len(result.errors) < 5:
                    result.errors.append(f"HTTP {resp.status}")
                return
    except Exception as exc:
        result.requests_failed += 1
        if len(result.errors) < 5:
            result.errors.append(f"{type(exc).__name__}: {exc}")
        return
    result.ack_ms.append((time.perf_counter() - t0) * 1000)
    result.events_acked += n


async def fixed_rate(
    url: str,
    body: Callable[[int, int], bytes],
    headers: dict[str, str],
    *,
    rate: float,
    per_request: int,
    seconds: float,
    first_seq: int = 0,
    max_in_flight: int = 256,
) -> LoadResult:
    """Send ``per_request`` events every ``per_request / rate`` seconds for ``seconds``.

    The schedule is absolute (request k goes at t0 + k·interval); a send never waits for
    earlier answers, so a slow server cannot slow the offered load down (no coordinated
    omission) until ``max_in_flight`` requests are outstanding.
    """
    import aiohttp

    interval = per_request / rate
    result = LoadResult()
    connector = aiohttp.TCPConnector(limit=max_in_flight)
    tasks: set[asyncio.Task[None]] = set()
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        t0 = time.perf_counter()
        k = 0
        seq = first_seq
        total = int(seconds / interval)
        while k < total:
            due = t0 + k * interval
            now = time.perf_counter()
            if due > now:
                await asyncio.sleep(due - now)
            else:
                result.max_behind_ms = max(result.max_behind_ms, (now - due) * 1000)
            while len(tasks) >= max_in_flight:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            task = asyncio.create_task(_post(session, url, body(seq, per_request), headers, result, per_request))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            result.max_in_flight = max(result.max_in_flight, len(tasks))
            result.events_sent += per_request
            seq += per_request
            k += 1
        if tasks:
            await asyncio.wait(tasks, timeout=30)
        result.seconds = time.perf_counter() - t0
    return result


async def blast(
    url: str,
    body: Callable[[int, int], bytes],
    headers: dict[str, str],
    *,
    events: int,
    per_request: int,
    concurrency: int,
    first_seq: int = 0,
    seconds_limit: float = 3600.0,
    progress: Callable[[int, float], None] | None = None,
) -> LoadResult:
    """Send ``events`` events as fast as the server takes them, ``concurrency`` requests in flight."""
    import aiohttp

    result = LoadResult()
    next_seq = first_seq
    end_seq = first_seq + events
    t0 = time.perf_counter()
    deadline = t0 + seconds_limit
    last_report = t0

    async def worker(session: Any) -> None:
        nonlocal next_seq, last_report
        while next_seq < end_seq and time.perf_counter() < deadline:
            seq = next_seq
            n = min(per_request, end_seq - seq)
            next_seq += n
            result.events_sent += n
            await _post(session, url, body(seq, n), headers, result, n)
            now = time.perf_counter()
            if progress is not None and now - last_report >= 5:
                last_report = now
                progress(result.events_acked, now - t0)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    result.seconds = time.perf_counter() - t0
    return result


# -------------------------------------------------------------------------- server


def webhook_workspace(hook_url: str, settings: dict[str, Any], delivery: dict[str, Any]) -> str:
    from eventyard.testing.server import workspace_yaml

    def block(mapping: dict[str, Any], indent: str) -> str:
        return "".join(f"{indent}{k}: {json.dumps(v)}\n" for k, v in mapping.items())

    text = workspace_yaml() + (
        "    destinations:\n"
        "      - name: hook\n"
        "        type: webhook\n"
        "        settings:\n"
        f"          url: {json.dumps(hook_url)}\n" + block(settings, "          ")
    )
    if delivery:
        text += "        delivery:\n" + block(delivery, "          ")
    return text + "    connections:\n      - source: default\n        destination: hook\n"


_STAGES_HOOK = """\
# Written by bench/route_common.py (benchmark only): the server's unify pipeline keeps just
# the stages named in ROUTE_BENCH_STAGES, to measure the route path apart from later stages.
import os

if os.environ.get("ROUTE_BENCH_STAGES"):
    import eventyard.unify.pipeline as _pipeline

    _keep = os.environ["ROUTE_BENCH_STAGES"].split(",")
    _pipeline.STAGES[:] = [s for s in _pipeline.STAGES if s[0] in _keep]
"""


def stages_env(workdir: Path, stages: str | None) -> dict[str, str]:
    """Environment for a server whose pipeline runs only ``stages`` (comma-separated names
    from ``eventyard.unify.pipeline.STAGES``); empty when ``stages`` is None."""
    if not stages:
        return {}
    hook = workdir / "stages-hook"
    hook.mkdir(parents=True, exist_ok=True)
    (hook / "sitecustomize.py").write_text(_STAGES_HOOK)
    return {"PYTHONPATH": str(hook), "ROUTE_BENCH_STAGES": stages}


def roles_env(workdir: Path, roles: tuple[str, ...], name: str) -> dict[str, str]:
    config = workdir / f"{name}.toml"
    config.write_text(f"roles = {json.dumps(list(roles))}\n")
    return {"EVENTYARD_CONFIG": str(config)}


_METRIC = re.compile(r"^([a-z_]+)(?:\{([^}]*)\})? ([0-9.eE+-]+|NaN)$")


def scrape(base_url: str) -> dict[tuple[str, str], float]:
    """``/metrics`` as {(name, labels): value}."""
    with urllib.request.urlopen(base_url + "/metrics", timeout=30) as resp:
        text = resp.read().decode()
    out: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        m = _METRIC.match(line)
        if m:
            out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


def backlog(metrics: dict[tuple[str, str], float], topic_prefix: str) -> int:
    return int(metric_sum(metrics, "eventyard_log_backlog", f'"{topic_prefix}'))


def metric_sum(metrics: dict[tuple[str, str], float], name: str, contains: str = "") -> float:
    return sum(v for (n, labels), v in metrics.items() if n == name and contains in labels)


class RssSampler:
    """Samples a process's RSS (with its children) every ``interval`` seconds in a thread."""

    def __init__(self, pid: int, interval: float = 1.0) -> None:
        import psutil

        self.proc = psutil.Process(pid)
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                rss = self.proc.memory_info().rss
                for child in self.proc.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        rss += child.memory_info().rss
            except psutil.Error:
                return
            self.samples.append((time.monotonic(), rss))
            self._stop.wait(self.interval)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def max_mb(self, since: float = 0.0, until: float = float("inf")) -> float:
        values = [rss for t, rss in self.samples if since <= t <= until]
        return max(values) / 2**20 if values else 0.0

    def last_mb(self) -> float:
        return self.samples[-1][1] / 2**20 if self.samples else 0.0


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until(check: Callable[[], bool], seconds: float, every: float = 0.5) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(every)
    return check()


def trace_breakdown(data_dir: Path, min_seq: int = 0) -> dict[str, dict[str, float]]:
    """Where the time went, per event, from eventyard's own trace table (read-only, after the run).

    ``ingest``: send → stored (the trace's ``accepted`` time is the receive time);
    ``pipeline``: stored → delivery job queued (unify + fan-out commit);
    ``delivery``: queued → delivery recorded (lease, batching wait, HTTP, commit).
    """
    from eventyard.log.base import TraceEntry

    decode = msgspec.json.Decoder(list[TraceEntry]).decode
    wanted = {"accepted", "queued", "delivered"}
    steps: dict[str, dict[str, float]] = {}
    conn = sqlite3.connect(f"file:{data_dir / 'log.sqlite3'}?mode=ro", uri=True, timeout=30)
    try:
        # Entries are stored packed per event and commit (see eventyard.log.trace_rows); an
        # entry without a time took its commit's, which is its row's.
        for message_id, row_at, packed in conn.execute("SELECT message_id, at, entries FROM trace"):
            mine = steps.setdefault(message_id, {})
            for e in decode(packed):
                if e.step in wanted:
                    at = e.at or row_at
                    mine[e.step] = min(at, mine.get(e.step, at))
    finally:
        conn.close()
    parts: dict[str, list[float]] = {"ingest": [], "pipeline": [], "delivery": []}
    for message_id, at in steps.items():
        bits = message_id.split("-")
        if len(bits) != 3 or bits[0] != "rb" or int(bits[1]) < min_seq:
            continue
        sent = int(bits[2]) / 1e9
        if "accepted" in at:
            parts["ingest"].append((at["accepted"] - sent) * 1000)
            if "queued" in at:
                parts["pipeline"].append((at["queued"] - at["accepted"]) * 1000)
                if "delivered" in at:
                    parts["delivery"].append((at["delivered"] - at["queued"]) * 1000)
    return {
        name: {"p50_ms": percentile(values, 50), "p99_ms": percentile(values, 99), "n": float(len(values))}
        for name, values in parts.items()
    }


# ---------------------------------------------------------------------------- stats


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description="the benchmark's webhook sink")
    sub = parser.add_subparsers(dest="command", required=True)
    sink = sub.add_parser("sink")
    sink.add_argument("--port", type=int, required=True)
    sink.add_argument("--status", type=int, default=200)
    args = parser.parse_args()
    run_sink(args.port, args.status)


if __name__ == "__main__":
    main()

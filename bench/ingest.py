"""Ingest benchmark: eventyard's tracking API against a bare ASGI app, driven by wrk.

    .venv/bin/python bench/ingest.py [--duration 15] [--rounds 3] [--connections 64] [--threads 1]

What it does, in one run:

1. generates realistic Segment events (track, page, identify from a browser SDK, 600-900
   bytes each) from a seeded random generator: a fixed set of single-event bodies and a
   fixed set of 100-event batch bodies, written to a temporary directory with the wrk Lua
   script that cycles through them (HTTP Basic auth with the write key);
2. starts the bare baseline (``bench/bare_app.py``: read body, msgspec-decode, 200) under
   uvicorn with uvloop and httptools, one worker, no access log, and the real server
   (``eventyard serve`` through ``eventyard.testing.server``) on a fresh data directory,
   with the same uvicorn stack and the default ``synchronous=FULL`` log;
3. for single events, then for batches: warms both up, then measures them with the same
   wrk settings and bodies in alternating rounds (bare, eventyard, eventyard, bare, ...), so
   a change in background load hits both alike; latency histograms of the rounds are merged;
4. checks that every request wrk saw answered 2xx is in the event log (acknowledged means
   durable), and prints events/s, p50, p99 and the ratios to the bare app.

Each measured run is preceded by a short warm-up run (not reported, but its acknowledged
events are part of the durability check). The server runs the ``collect`` role only by
default (``--roles collect,unify,route`` also runs the pipeline in the same process). wrk is
installed with ``apt-get install -y wrk`` when it is missing. Only 127.0.0.1 is contacted.

Exit status: 0, or 2 when an acknowledged event is missing from the log, or 1 with
``--check-targets`` when a target is not met.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eventyard.runtime.settings import Settings
from eventyard.spec.stored import raw_events
from eventyard.testing.server import ServerProcess, free_port, stop_process

BENCH_DIR = Path(__file__).resolve().parent
BATCH_SIZE = 100
SCENARIOS = {"single": "single event", "batch": f"{BATCH_SIZE}-event batch"}
EVENT_MIN_BYTES, EVENT_MAX_BYTES = 600, 900
#: Targets of the issue, on a 2-core machine.
SINGLE_RATIO_TARGET = 0.5
BATCH_EVENTS_TARGET = 100_000

# --------------------------------------------------------------------------- event generator

FIRST_NAMES = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Tim"]
LAST_NAMES = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman"]
DOMAINS = ["example.com", "example.org", "mail.example.net", "corp.example.io"]
COMPANIES = [
    ("Initech", "Software"),
    ("Globex", "Manufacturing"),
    ("Umbrella", "Pharmaceuticals"),
    ("Hooli", "Internet"),
    ("Vandelay Industries", "Import/Export"),
    ("Stark Industries", "Defense"),
]
PLANS = ["free", "starter", "pro", "business", "enterprise"]
USER_AGENTS = [
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/125.0.0.0 Safari/537.36 Edg/125.0.0.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.6367.113 Mobile Safari/537.36",
]
LIBRARIES = [("analytics.js", "next-1.70.0"), ("analytics.js", "next-1.66.0"), ("analytics.js", "2.11.1")]
LOCALES = ["en-US", "en-GB", "de-DE", "fr-FR", "es-ES", "pt-BR", "ja-JP"]
TIMEZONES = ["America/New_York", "America/Los_Angeles", "Europe/Berlin", "Europe/London", "Asia/Tokyo"]
SCREENS = [(1920, 1080, 1), (1440, 900, 2), (2560, 1440, 1), (390, 844, 3), (412, 915, 2.625)]
PAGES = [
    ("/", "Acme - Home"),
    ("/pricing", "Pricing - Acme"),
    ("/docs/getting-started", "Getting started - Acme Docs"),
    ("/blog/2026/05/shipping-faster", "Shipping faster - Acme Blog"),
    ("/products/widgets", "Widgets - Acme Store"),
    ("/checkout/cart", "Your cart - Acme Store"),
    ("/account/settings", "Settings - Acme"),
]
REFERRERS = ["", "https://www.google.com/", "https://news.ycombinator.com/", "https://t.co/x1Yz9", ""]
CAMPAIGNS = [
    None,
    None,
    None,
    {"name": "spring_sale", "source": "newsletter", "medium": "email"},
    {"name": "brand", "source": "google", "medium": "cpc"},
]
PRODUCTS = [
    ("507f1f77bcf86cd799439011", "G-32", "Games", "Monopoly: 3rd Edition", 18.99),
    ("505bd76785ebb509fc183733", "W-10", "Widgets", "Acme Widget Pro", 49.0),
    ("5e8f8f8f8f8f8f8f8f8f8f8f", "B-77", "Books", "Structure and Interpretation", 54.5),
    ("60af924d9c1e2b0012c3d4e5", "H-03", "Hardware", "Mechanical Keyboard 75%", 129.0),
]
TRACK_NAMES = ["Product Viewed", "Product Added", "Order Completed", "Button Clicked", "Signed Up"]


class EventGenerator:
    """Deterministic browser-SDK events: the same seed gives the same bytes."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.clock = dt.datetime(2026, 5, 4, 9, 0, 0, tzinfo=dt.UTC)
        self.users = [self._user(i) for i in range(500)]

    def _user(self, i: int) -> dict[str, Any]:
        r = self.rng
        first, last = r.choice(FIRST_NAMES), r.choice(LAST_NAMES)
        company, industry = r.choice(COMPANIES)
        return {
            "anonymousId": str(uuid.UUID(int=r.getrandbits(128), version=4)),
            "userId": f"usr_{i:05d}{r.getrandbits(24):06x}" if r.random() < 0.7 else None,
            "first": first,
            "last": last,
            "email": f"{first.lower()}.{last.lower()}{i}@{r.choice(DOMAINS)}",
            "company": company,
            "industry": industry,
            "plan": r.choice(PLANS),
            "ua": r.choice(USER_AGENTS),
            "library": r.choice(LIBRARIES),
            "locale": r.choice(LOCALES),
            "timezone": r.choice(TIMEZONES),
            "screen": r.choice(SCREENS),
        }

    def _stamp(self) -> str:
        self.clock += dt.timedelta(milliseconds=self.rng.randint(5, 1500))
        return f"{self.clock:%Y-%m-%dT%H:%M:%S}.{self.clock.microsecond // 1000:03d}Z"

    def _context(self, user: dict[str, Any], page: tuple[str, str], referrer: str) -> dict[str, Any]:
        r = self.rng
        path, title = page
        search = f"?ref={r.getrandbits(20):05x}" if r.random() < 0.2 else ""
        width, height, density = user["screen"]
        context: dict[str, Any] = {
            "library": {"name": user["library"][0], "version": user["library"][1]},
            "page": {
                "path": path,
                "referrer": referrer,
                "search": search,
                "title": title,
                "url": f"https://acme.example{path}{search}",
            },
            "userAgent": user["ua"],
            "locale": user["locale"],
            "timezone": user["timezone"],
        }
        if r.random() < 0.5:
            context["screen"] = {"width": width, "height": height, "density": density}
        campaign = r.choice(CAMPAIGNS)
        if campaign:
            context["campaign"] = campaign
        return context

    def _properties(self, name: str, user: dict[str, Any]) -> dict[str, Any]:
        r = self.rng
        pid, sku, category, title, price = r.choice(PRODUCTS)
        if name in ("Product Viewed", "Product Added"):
            return {
                "product_id": pid,
                "sku": sku,
                "category": category,
                "name": title,
                "price": price,
                "quantity": r.randint(1, 3),
                "currency": "USD",
            }
        if name == "Order Completed":
            quantity = r.randint(1, 4)
            return {
                "order_id": f"ord_{r.getrandbits(40):010x}",
                "revenue": round(price * quantity, 2),
                "currency": "USD",
                "products": [{"product_id": pid, "price": price, "quantity": quantity}],
            }
        if name == "Button Clicked":
            return {"button_id": f"cta-{r.randint(1, 40)}", "label": r.choice(["Start trial", "Buy now"])}
        return {"plan": user["plan"], "method": r.choice(["email", "google", "github"])}

    def event(self) -> dict[str, Any]:
        r = self.rng
        user = r.choice(self.users)
        page = r.choice(PAGES)
        kind = r.choices(["track", "page", "identify"], weights=[60, 25, 15])[0]
        timestamp = self._stamp()
        event: dict[str, Any] = {"type": kind}
        if kind == "track":
            name = r.choice(TRACK_NAMES)
            event["event"] = name
            event["properties"] = self._properties(name, user)
        elif kind == "page":
            event["name"] = page[1].split(" - ")[0]
            event["properties"] = {"path": page[0], "title": page[1], "url": f"https://acme.example{page[0]}"}
        else:
            event["traits"] = {
                "email": user["email"],
                "firstName": user["first"],
                "lastName": user["last"],
                "plan": user["plan"],
                "company": {"name": user["company"], "industry": user["industry"]},
                "logins": r.randint(1, 400),
            }
        event["anonymousId"] = user["anonymousId"]
        if user["userId"]:
            event["userId"] = user["userId"]
        event["messageId"] = f"ajs-next-{r.getrandbits(128):032x}"
        event["timestamp"] = timestamp
        event["context"] = self._context(user, page, r.choice(REFERRERS))
        event["sentAt"] = timestamp
        return event

    def sized_event(self) -> dict[str, Any]:
        """An event whose JSON is 600-900 bytes (draws again when it falls outside)."""
        for _ in range(100):
            event = self.event()
            if EVENT_MIN_BYTES <= len(dumps(event)) <= EVENT_MAX_BYTES:
                return event
        raise RuntimeError("the generator keeps producing events outside 600-900 bytes")

    def batch(self, size: int) -> dict[str, Any]:
        events = [self.sized_event() for _ in range(size)]
        # One send of a queue of events: sentAt is the time of the send, after the last call.
        sent_at = events[-1]["timestamp"]
        for event in events:
            event.pop("sentAt")
        return {"batch": events, "sentAt": sent_at}


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


# ------------------------------------------------------------------------------------ wrk

LUA = r"""
-- Cycles through pre-generated bodies, one "path<TAB>body" per line of the data file.
local data_file = %(data_file)s
local auth = %(auth)s
local counter = 0
local reqs = {}
local n = 0
local idx = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end

function init(args)
  local headers = {["Authorization"] = auth, ["Content-Type"] = "application/json"}
  for line in io.lines(data_file) do
    local tab = line:find("\t", 1, true)
    n = n + 1
    reqs[n] = wrk.format("POST", line:sub(1, tab - 1), headers, line:sub(tab + 1))
  end
  idx = ((tid or 0) * 7919) %% n
end

function request()
  idx = idx %% n + 1
  return reqs[idx]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%%d,"duration_us":%%d,"connect":%%d,"read":%%d,"write":%%d,"status":%%d,"timeout":%%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout))
  -- The whole latency histogram (microseconds, count), so rounds can be merged exactly.
  local parts = {}
  for i = 1, #latency do
    local value, count = latency(i)
    parts[#parts + 1] = string.format("%%d:%%d", value, count)
  end
  io.write("WRK_HIST ", table.concat(parts, " "), "\n")
end
"""


@dataclass
class WrkResult:
    requests: int
    duration_s: float
    non_2xx: int  # responses with status >= 400 (wrk's "Non-2xx or 3xx responses")
    socket_errors: int  # connect + read + write errors
    timeouts: int
    latency_us: dict[int, int]  # histogram: latency in microseconds -> responses

    @property
    def ok(self) -> int:
        return self.requests - self.non_2xx

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    def percentile_ms(self, p: float) -> float:
        """wrk's own definition: the smallest latency with at least p% of the responses at or below it."""
        total = sum(self.latency_us.values())
        rank = round(p / 100 * total + 0.5)
        seen = 0
        for value in sorted(self.latency_us):
            seen += self.latency_us[value]
            if seen >= rank:
                return value / 1000
        return 0.0

    @property
    def p50_ms(self) -> float:
        return self.percentile_ms(50)

    @property
    def p99_ms(self) -> float:
        return self.percentile_ms(99)

    @classmethod
    def combine(cls, parts: list[WrkResult]) -> WrkResult:
        """Several runs as one: counts and durations add up, histograms merge."""
        hist: dict[int, int] = {}
        for part in parts:
            for value, count in part.latency_us.items():
                hist[value] = hist.get(value, 0) + count
        return cls(
            requests=sum(p.requests for p in parts),
            duration_s=sum(p.duration_s for p in parts),
            non_2xx=sum(p.non_2xx for p in parts),
            socket_errors=sum(p.socket_errors for p in parts),
            timeouts=sum(p.timeouts for p in parts),
            latency_us=hist,
        )


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if shutil.which("apt-get") is None:
        sys.exit("wrk is missing and apt-get is not available: install wrk and run again")
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*sudo, "apt-get", "install", "-y", "-q", "wrk"]
    print("wrk is missing; installing it with apt-get", flush=True)
    if subprocess.run(install, env=env, timeout=600).returncode != 0:
        subprocess.run([*sudo, "apt-get", "update", "-q"], env=env, timeout=600, check=True)
        subprocess.run(install, env=env, timeout=600, check=True)
    found = shutil.which("wrk")
    if not found:
        sys.exit("wrk is still missing after apt-get install")
    return found


def write_lua(path: Path, data_file: Path, write_key: str) -> None:
    auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    # JSON string literals of ASCII text are valid Lua string literals.
    path.write_text(LUA % {"data_file": json.dumps(str(data_file)), "auth": json.dumps(auth)})


def run_wrk(wrk: str, script: Path, url: str, args: argparse.Namespace, duration: float) -> WrkResult:
    seconds = max(1, round(duration))
    cmd = [
        wrk,
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{seconds}s",
        f"--timeout={args.timeout}s",
        "-s",
        str(script),
        url,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    lines = done.stdout.splitlines()
    summary = next((ln for ln in lines if ln.startswith("WRK_JSON ")), None)
    hist = next((ln for ln in lines if ln.startswith("WRK_HIST")), None)
    if done.returncode != 0 or summary is None or hist is None:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    raw = json.loads(summary[len("WRK_JSON ") :])
    latency: dict[int, int] = {}
    for pair in hist[len("WRK_HIST") :].split():
        value, count = pair.split(":")
        latency[int(value)] = latency.get(int(value), 0) + int(count)
    return WrkResult(
        requests=raw["requests"],
        duration_s=raw["duration_us"] / 1e6,
        non_2xx=raw["status"],
        socket_errors=raw["connect"] + raw["read"] + raw["write"],
        timeouts=raw["timeout"],
        latency_us=latency,
    )


# ------------------------------------------------------------------------- the two servers


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its child processes (the server's workers) so
    far (Linux), 0 where /proc is missing."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(cpu_seconds(int(child)) for child in children)


class BareApp:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "bare-app.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> None:
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, str(BENCH_DIR / "bare_app.py"), "--port", str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the bare app exited at start:\n{self.log_path.read_text()}")
            with contextlib.suppress(OSError):
                req = urllib.request.Request(self.url + "/v1/track", data=b"{}")
                with urllib.request.urlopen(req, timeout=1) as resp:
                    if resp.status == 200:
                        return
            time.sleep(0.05)
        raise RuntimeError(f"the bare app did not become ready:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        stop_process(self.proc)


def server_env(workdir: Path, roles: str, workers: int) -> dict[str, str]:
    """Environment of the server: a config file with its roles and worker processes (when this
    version has those settings)."""
    fields = Settings.__struct_fields__
    lines = [f"roles = {json.dumps(roles.split(','))}"] if "roles" in fields else []
    if "workers" in fields:
        lines.append(f"workers = {workers}")
    elif workers != 1:
        raise SystemExit("this version of eventyard has no `workers` setting; use --workers 1")
    if not lines:
        return {}
    config = workdir / "eventyard.toml"
    config.write_text("\n".join(lines) + "\n")
    return {"EVENTYARD_CONFIG": str(config)}


def count_records(data_dir: Path, topic: str) -> int:
    """Events in a topic of the server's log (read-only; WAL lets us read while it writes).

    An ``ingest`` record holds the accepted events of one request (``eventyard.spec.stored``).
    """
    conn = sqlite3.connect(f"file:{data_dir / 'log.sqlite3'}?mode=ro", uri=True, timeout=30)
    try:
        if topic != "ingest":
            return int(conn.execute("SELECT count(*) FROM records WHERE topic = ?", (topic,)).fetchone()[0])
        rows = conn.execute("SELECT payload FROM records WHERE topic = ?", (topic,))
        return sum(len(raw_events(payload)) for (payload,) in rows)
    finally:
        conn.close()


# ------------------------------------------------------------------------------ the run


@dataclass
class Measured:
    scenario: str  # "single" or "batch"
    target: str  # "bare" or "eventyard"
    result: WrkResult
    events_per_request: int
    cpu_percent: float

    @property
    def events_per_s(self) -> float:
        return self.result.rps * self.events_per_request


@dataclass
class Target:
    name: str  # "bare" or "eventyard"
    url: str
    pid: int


def measure(
    wrk: str, script: Path, targets: list[Target], args: argparse.Namespace, label: str
) -> dict[str, tuple[WrkResult, WrkResult, float]]:
    """Warm each target up, then measure them in alternating rounds, so both see the same machine.

    Returns, per target: (warm-up, the rounds combined, server CPU % during its rounds).
    """
    warm: dict[str, WrkResult] = {}
    for target in targets:
        print(f"  {label}, {target.name}: warm-up {args.warmup:g}s", flush=True)
        warm[target.name] = run_wrk(wrk, script, target.url, args, args.warmup)
    rounds: dict[str, list[WrkResult]] = {t.name: [] for t in targets}
    cpu = dict.fromkeys(rounds, 0.0)
    wall = dict.fromkeys(rounds, 0.0)
    for r in range(args.rounds):
        for target in targets if r % 2 == 0 else targets[::-1]:
            cpu0, t0 = cpu_seconds(target.pid), time.monotonic()
            result = run_wrk(wrk, script, target.url, args, args.duration / args.rounds)
            cpu[target.name] += cpu_seconds(target.pid) - cpu0
            wall[target.name] += time.monotonic() - t0
            rounds[target.name].append(result)
            print(
                f"  {label}, {target.name}, round {r + 1}/{args.rounds}: {result.rps:,.0f} req/s, "
                f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, non-2xx {result.non_2xx}, "
                f"socket errors {result.socket_errors}, timeouts {result.timeouts}",
                flush=True,
            )
    return {
        name: (warm[name], WrkResult.combine(parts), 100 * cpu[name] / wall[name]) for name, parts in rounds.items()
    }


def generate(workdir: Path, args: argparse.Namespace, write_key: str) -> tuple[Path, Path, str]:
    gen = EventGenerator(args.seed)
    digest = hashlib.sha256()
    sizes: list[int] = []
    single_data = workdir / "single.tsv"
    with single_data.open("wb") as out:
        for _ in range(args.single_bodies):
            event = gen.sized_event()
            body = dumps(event)
            sizes.append(len(body))
            line = f"/v1/{event['type']}\t".encode() + body + b"\n"
            digest.update(line)
            out.write(line)
    batch_sizes: list[int] = []
    batch_data = workdir / "batch.tsv"
    with batch_data.open("wb") as out:
        for _ in range(args.batch_bodies):
            body = dumps(gen.batch(BATCH_SIZE))
            batch_sizes.append(len(body))
            line = b"/v1/batch\t" + body + b"\n"
            digest.update(line)
            out.write(line)
    single_lua, batch_lua = workdir / "single.lua", workdir / "batch.lua"
    write_lua(single_lua, single_data, write_key)
    write_lua(batch_lua, batch_data, write_key)
    print(
        f"bodies: {len(sizes)} single events ({min(sizes)}-{max(sizes)} bytes, "
        f"mean {sum(sizes) / len(sizes):.0f}); {len(batch_sizes)} batches of {BATCH_SIZE} "
        f"(mean {sum(batch_sizes) / len(batch_sizes) / 1024:.0f} KiB); sha256 {digest.hexdigest()[:16]}",
        flush=True,
    )
    return single_lua, batch_lua, digest.hexdigest()


def report_background_load() -> None:
    """Print how busy the machine is before a run: anything else running skews the numbers."""
    busy = busy_cpus()
    if busy is not None:
        note = "  (WARNING: other processes are busy; results will be low and noisy)" if busy > 0.15 else ""
        print(f"background load before the run: {busy:.2f} CPUs busy{note}", flush=True)


def busy_cpus(seconds: float = 1.0) -> float | None:
    """How many CPUs' worth of time the machine spent busy over ``seconds`` (Linux), before we start."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields[:8]), idle

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    if total1 == total0:
        return 0.0
    return (1 - (idle1 - idle0) / (total1 - total0)) * (os.cpu_count() or 1)


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}, Python {platform.python_version()}"


def wrk_version(wrk: str) -> str:
    done = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=10)
    return (done.stdout + done.stderr).strip().splitlines()[0] if (done.stdout + done.stderr) else "wrk"


def report(rows: list[Measured], args: argparse.Namespace) -> bool:
    by = {(m.scenario, m.target): m for m in rows}
    print()
    print(
        f"wrk -t{args.threads} -c{args.connections}, {args.duration:g}s per app and scenario in "
        f"{args.rounds} alternating rounds (after a {args.warmup:g}s warm-up), same bodies for both apps"
    )
    print()
    header = "| scenario | app | requests/s | events/s | p50 ms | p99 ms | non-2xx | errors | server CPU |"
    print(header)
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    names = SCENARIOS
    for m in rows:
        r = m.result
        print(
            f"| {names[m.scenario]} | {m.target} | {r.rps:,.0f} | {m.events_per_s:,.0f} | "
            f"{r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.non_2xx} | {r.socket_errors + r.timeouts} | "
            f"{m.cpu_percent:.0f}% |"
        )
    print()
    for scenario in ("single", "batch"):
        ours, bare = by[(scenario, "eventyard")], by[(scenario, "bare")]
        ratio = ours.events_per_s / bare.events_per_s if bare.events_per_s else 0.0
        p50 = ours.result.p50_ms / bare.result.p50_ms if bare.result.p50_ms else 0.0
        p99 = ours.result.p99_ms / bare.result.p99_ms if bare.result.p99_ms else 0.0
        print(
            f"{names[scenario]}: eventyard / bare = {ratio:.2f} of the events/s; "
            f"latency x{p50:.1f} at p50, x{p99:.1f} at p99"
        )
    single_ratio = by[("single", "eventyard")].events_per_s / by[("single", "bare")].events_per_s
    batch_eps = by[("batch", "eventyard")].events_per_s
    single_ok = single_ratio >= SINGLE_RATIO_TARGET
    batch_ok = batch_eps >= BATCH_EVENTS_TARGET
    print()
    print(
        f"target single events >= {SINGLE_RATIO_TARGET:.0%} of the bare app's requests/s: "
        f"{single_ratio:.0%} -> {'MET' if single_ok else 'NOT MET'}"
    )
    print(f"target batches >= {BATCH_EVENTS_TARGET:,} events/s: {batch_eps:,.0f} -> {'MET' if batch_ok else 'NOT MET'}")
    return single_ok and batch_ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--duration", type=float, default=15, help="measured seconds per app and scenario (split in rounds)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternate bare/eventyard this many times per scenario")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of the warm-up before each run")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (both apps)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (1 or 2 on a 2-core machine)")
    parser.add_argument("--timeout", type=int, default=10, help="wrk request timeout, seconds")
    parser.add_argument(
        "--roles",
        default="collect",
        help="roles of the eventyard process, comma-separated (collect,unify,route runs the pipeline too)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="eventyard processes serving the port (the `workers` setting; above 1 needs --roles collect)",
    )
    parser.add_argument("--seed", type=int, default=20260504, help="seed of the event generator")
    parser.add_argument("--single-bodies", type=int, default=4096, help="distinct single-event bodies")
    parser.add_argument("--batch-bodies", type=int, default=64, help="distinct 100-event batch bodies")
    parser.add_argument("--workdir", type=Path, default=None, help="keep bodies, scripts and data here")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    parser.add_argument("--check-targets", action="store_true", help="exit with status 1 when a target is not met")
    args = parser.parse_args()
    if args.rounds < 1 or args.duration / args.rounds < 1 or args.warmup < 1:
        parser.error("--warmup and each round (--duration / --rounds) must be at least 1 second")

    wrk = ensure_wrk()
    print(machine())
    report_background_load()
    print(f"{wrk_version(wrk)}; {args.threads} thread(s), {args.connections} connections", flush=True)

    tmp = None
    if args.workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="eventyard-bench-")
        workdir = Path(tmp.name)
    else:
        workdir = args.workdir.resolve()
        workdir.mkdir(parents=True, exist_ok=True)
    try:
        return run(wrk, workdir, args)
    finally:
        if tmp is not None:
            tmp.cleanup()


def run(wrk: str, workdir: Path, args: argparse.Namespace) -> int:
    server = ServerProcess(data_dir=workdir / "data", env=server_env(workdir, args.roles, args.workers))
    single_lua, batch_lua, digest = generate(workdir, args, server.write_key)
    roles = args.roles if "roles" in Settings.__struct_fields__ else "(all: this version has no roles)"
    print("bare: bench/bare_app.py (uvicorn + uvloop + httptools, one worker; parse JSON, answer 200)")
    print(
        f"eventyard: eventyard serve (SQLite log, synchronous=FULL, group commit; roles: {roles}; "
        f"workers: {args.workers})"
    )
    server.prepare()
    bare = BareApp(workdir)
    rows: list[Measured] = []
    durable: dict[str, tuple[int, int]] = {}  # scenario -> (events acknowledged, events in the log)
    try:
        bare.start()
        server.start()
        assert bare.proc is not None and server.proc is not None
        targets = [Target("bare", bare.url, bare.proc.pid), Target("eventyard", server.url, server.proc.pid)]
        before = count_records(server.data_dir, "ingest")
        for scenario, script, per in (("single", single_lua, 1), ("batch", batch_lua, BATCH_SIZE)):
            measured = measure(wrk, script, targets, args, SCENARIOS[scenario])
            for target in targets:
                _, result, cpu = measured[target.name]
                rows.append(Measured(scenario, target.name, result, per, cpu))
            # Everything wrk saw acknowledged (warm-up included) must be in the log by now.
            after = count_records(server.data_dir, "ingest")
            warm, result, _ = measured["eventyard"]
            durable[scenario] = ((warm.ok + result.ok) * per, after - before)
            before = after
        rejected = count_records(server.data_dir, "rejected")
    finally:
        server.stop()
        bare.stop()

    targets_met = report(rows, args)
    print()
    durable_ok = True
    for scenario, (acked, stored) in durable.items():
        good = stored >= acked
        durable_ok = durable_ok and good
        print(
            f"durability, {scenario}: {acked:,} events acknowledged with 2xx, {stored:,} in the log "
            f"-> {'OK' if good else 'LOST EVENTS'}"
        )
    print(f"refused events recorded in the 'rejected' topic: {rejected}")

    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": machine(),
                    "wrk": {"threads": args.threads, "connections": args.connections},
                    "roles": args.roles,
                    "workers": args.workers,
                    "duration_s": args.duration,
                    "rounds": args.rounds,
                    "bodies_sha256": digest,
                    "results": [
                        {
                            "scenario": m.scenario,
                            "app": m.target,
                            "requests_per_s": m.result.rps,
                            "events_per_s": m.events_per_s,
                            "p50_ms": m.result.p50_ms,
                            "p90_ms": m.result.percentile_ms(90),
                            "p99_ms": m.result.p99_ms,
                            "max_ms": max(m.result.latency_us, default=0) / 1000,
                            "non_2xx": m.result.non_2xx,
                            "socket_errors": m.result.socket_errors,
                            "timeouts": m.result.timeouts,
                            "server_cpu_percent": m.cpu_percent,
                        }
                        for m in rows
                    ],
                    "durability": {k: {"acknowledged": a, "stored": s} for k, (a, s) in durable.items()},
                    "targets_met": targets_met,
                },
                indent=2,
            )
        )
    if not durable_ok:
        return 2
    return 1 if args.check_targets and not targets_met else 0


if __name__ == "__main__":
    sys.exit(main())

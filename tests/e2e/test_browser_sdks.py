"""The official browser SDKs, unchanged, in a real headless Chromium against a real eventyard.

- ``@segment/analytics-next`` (UMD bundle) loads its settings from eventyard (``cdnURL``) and
  sends every call type, one request per event and with the batching delivery strategy;
- ``@rudderstack/analytics-js`` v3 (bundled build) loads its source config from eventyard
  (``configUrl``) and sends every call type to it as its data plane.

The page is served from another origin (a second loopback port), so the SDKs' requests are
cross-origin and eventyard's CORS answers, preflights included, are what the browser checks.
Chromium gets no internet: every non-loopback request goes to a proxy on a closed port and
fails, and every request the pages make is recorded, so the tests assert that none left
127.0.0.1. (Playwright's request interception is not used for that: while a route is
installed, Playwright answers CORS preflights itself and they would never reach eventyard.)

Setup: Debian ``chromium`` (tests/system-packages.txt) and the pinned npm packages in
tests/e2e/browser (``npm ci``, done by ``./run test``). A screenshot of each page is saved in
test-artifacts/.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from eventyard.testing.server import ServerProcess, read_log
from eventyard.testing.services import require_service
from eventyard.testing.wait import eventually

try:
    from playwright.sync_api import Browser, BrowserContext, Page, Request, sync_playwright
except ImportError:  # the dev extras are not installed; the `browser` fixture says so
    sync_playwright = None

pytestmark = pytest.mark.slow

TESTS_DIR = Path(__file__).resolve().parents[1]
BROWSER_DIR = Path(__file__).resolve().parent / "browser"
ARTIFACTS = TESTS_DIR.parent / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
SEGMENT_UMD = "node_modules/@segment/analytics-next/dist/umd/index.js"
RUDDER_UMD = "node_modules/@rudderstack/analytics-js/dist/npm/modern/bundled/umd/index.js"
LOOPBACK = "127.0.0.1"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    # Everything but loopback (which Chromium never proxies) goes to a closed port and fails.
    "--proxy-server=http://127.0.0.1:9",
]
SEGMENT_LIBRARY = "analytics.js"
RUDDER_LIBRARY = "RudderLabs JavaScript SDK"


@pytest.fixture(scope="module")
def require() -> Callable[[bool, str], None]:
    return require_service


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    """tests/e2e/browser (the page and node_modules) over HTTP on its own loopback port."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(BROWSER_DIR))
    httpd = http.server.ThreadingHTTPServer((LOOPBACK, 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, name="browser-sdk-site", daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def browser(require: Callable[[bool, str], None]) -> Iterator[Browser]:
    require(sync_playwright is not None, "the playwright Python package (pip install -e '.[dev]')")
    require(shutil.which(CHROMIUM) is not None, f"Chromium at {CHROMIUM} (apt-get install chromium)")
    require(
        (BROWSER_DIR / SEGMENT_UMD).is_file() and (BROWSER_DIR / RUDDER_UMD).is_file(),
        "the browser SDKs in tests/e2e/browser/node_modules (npm ci there, or ./run test)",
    )
    assert sync_playwright is not None
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Tab:
    """A fresh browser context with one page, and what its network did."""

    context: BrowserContext
    page: Page
    site: str
    #: requests to anything but 127.0.0.1 (all of them fail; there must be none)
    outside: list[str] = field(default_factory=list)
    #: (method, url, status) of every response the page got
    responses: list[tuple[str, str, int]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    #: URLs of the CORS preflights Chromium sent (seen through the DevTools protocol)
    preflights: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def note(self, line: str) -> None:
        self.page.evaluate("line => window.note(line)", line)

    def load_script(self, path: str) -> None:
        self.page.add_script_tag(url=f"{self.site}/{path}")

    def paths_to(self, base_url: str, method: str) -> list[str]:
        return [urlsplit(url).path for m, url, _ in self.responses if m == method and url.startswith(base_url)]

    def wait_for_responses(self, base_url: str, method: str, count: int, timeout: float = 10.0) -> list[str]:
        """``paths_to`` once ``count`` responses are in (or ``timeout`` passed).

        Playwright's sync API hands the page's events over only while the test calls into it,
        so a response the server already answered may not be in ``responses`` yet.
        """
        deadline = time.monotonic() + timeout
        while len(self.paths_to(base_url, method)) < count and time.monotonic() < deadline:
            self.page.wait_for_timeout(50)
        return self.paths_to(base_url, method)

    def assert_clean(self, server: ServerProcess) -> None:
        assert self.outside == [], f"requests left 127.0.0.1: {self.outside}"
        assert self.failed == [], f"requests failed: {self.failed}"
        assert self.errors == [], f"errors in the page: {self.errors}"
        to_server = [(m, u, s) for m, u, s in self.responses if u.startswith(server.url)]
        assert to_server, "the SDK sent nothing to eventyard"
        assert all(200 <= s < 300 for _, _, s in to_server), to_server
        assert read_log(server.data_dir, "rejected") == []


@pytest.fixture
def tab(browser: Browser, site: str, request: pytest.FixtureRequest) -> Iterator[Tab]:
    context = browser.new_context()
    page = context.new_page()
    t = Tab(context, page, site)

    def on_request(req: Request) -> None:
        if urlsplit(req.url).hostname != LOOPBACK and not req.url.startswith("data:"):
            t.outside.append(req.url)

    def on_failed(req: Request) -> None:
        if urlsplit(req.url).hostname == LOOPBACK:
            t.failed.append(f"{req.method} {req.url}: {req.failure}")

    def on_preflight(event: dict[str, Any]) -> None:
        if event.get("initiator", {}).get("type") == "preflight":
            t.preflights.append(event["request"]["url"])

    context.on("request", on_request)
    context.on("requestfailed", on_failed)
    context.on("response", lambda resp: t.responses.append((resp.request.method, resp.url, resp.status)))
    page.on("pageerror", lambda exc: t.errors.append(str(exc)))
    page.on("console", lambda msg: t.errors.append(msg.text) if msg.type == "error" else None)
    cdp = context.new_cdp_session(page)
    cdp.on("Network.requestWillBeSent", on_preflight)
    cdp.send("Network.enable")
    page.goto(f"{site}/page.html")
    try:
        t.note(f"page origin: {site}")
        yield t
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        try:
            page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
        finally:
            context.close()


def wait_for_events(server: ServerProcess, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
    """The stored events once there are ``count`` of them (or whatever is there at the deadline)."""
    return eventually(lambda: read_log(server.data_dir), lambda events: len(events) >= count, timeout)


def by_label(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Events keyed by type, or by event name for tracks; each label must be unique."""
    labelled = {e.get("event") or e["type"]: e for e in events}
    assert len(labelled) == len(events), [e.get("event") or e["type"] for e in events]
    return labelled


def assert_browser_event(event: dict[str, Any], library: str, anonymous_id: str) -> None:
    assert event["anonymousId"] == anonymous_id
    context = event["context"]
    assert context["ip"] == LOOPBACK, "context.ip is filled for browser traffic"
    assert context["library"]["name"] == library
    for name in ("receivedAt", "timestamp", "originalTimestamp", "sentAt"):
        datetime.fromisoformat(event[name])
    assert event["messageId"]
    assert "writeKey" not in event


LOAD_SEGMENT = """async ({writeKey, cdnURL, options}) => {
  const [analytics] = await AnalyticsNext.AnalyticsBrowser.load({writeKey, cdnURL}, options);
  note(`@segment/analytics-next ${analytics.VERSION} loaded its settings from ${cdnURL}`);
  window.analytics = analytics;
  return analytics.user().anonymousId();
}"""


def test_segment_analytics_next_sends_every_call_type(tab: Tab, server: ServerProcess) -> None:
    tab.load_script(SEGMENT_UMD)
    anonymous_id = tab.page.evaluate(LOAD_SEGMENT, {"writeKey": server.write_key, "cdnURL": server.url})
    tab.page.evaluate(
        """async () => {
          // alias before identify: once a user is identified, analytics-next replaces an
          // alias's userId with the current one
          await analytics.page('Docs', 'Getting Started', {section: 'intro'});
          await analytics.track('Signed Up', {plan: 'pro'});
          await analytics.alias('user-1');
          await analytics.identify('user-1', {email: 'ada@example.com'});
          await analytics.group('group-1', {name: 'Acme'});
          note('sent page, track, alias, identify, group');
        }"""
    )
    events = wait_for_events(server, 5)
    tab.note(f"eventyard stored {len(events)} events: {', '.join(e['type'] for e in events)}")

    assert len(events) == 5, events
    got = by_label(events)
    for event in events:
        assert_browser_event(event, SEGMENT_LIBRARY, anonymous_id)
    assert got["page"]["name"] == "Getting Started"
    assert got["page"]["category"] == "Docs"
    assert got["page"]["properties"]["section"] == "intro"
    assert got["page"]["context"]["page"]["url"] == f"{tab.site}/page.html"
    assert "userId" not in got["page"]
    assert got["Signed Up"]["type"] == "track"
    assert got["Signed Up"]["properties"] == {"plan": "pro"}
    assert "userId" not in got["Signed Up"]
    assert got["alias"]["userId"] == "user-1"
    assert got["alias"]["previousId"] == anonymous_id
    assert got["identify"]["userId"] == "user-1"
    assert got["identify"]["traits"] == {"email": "ada@example.com"}
    assert got["group"]["userId"] == "user-1"
    assert got["group"]["groupId"] == "group-1"
    assert got["group"]["traits"] == {"name": "Acme"}

    settings_path = f"/v1/projects/{server.write_key}/settings"
    assert tab.paths_to(server.url, "GET") == [settings_path]
    sent = ["/v1/p", "/v1/t", "/v1/a", "/v1/i", "/v1/g"]
    assert sorted(tab.wait_for_responses(server.url, "POST", len(sent))) == sorted(sent)
    # analytics-next sends an Authorization header, so its calls are preflighted
    assert {urlsplit(u).path for u in tab.preflights} == set(sent)
    tab.assert_clean(server)


def test_segment_analytics_next_batching_delivery(tab: Tab, server: ServerProcess) -> None:
    tab.load_script(SEGMENT_UMD)
    batching = {"strategy": "batching", "config": {"size": 3, "timeout": 500}}
    options = {"integrations": {"Segment.io": {"deliveryStrategy": batching}}}
    anonymous_id = tab.page.evaluate(
        LOAD_SEGMENT, {"writeKey": server.write_key, "cdnURL": server.url, "options": options}
    )
    tab.page.evaluate(
        """async () => {
          await analytics.identify('user-3', {plan: 'team'});
          for (const n of [1, 2, 3, 4]) await analytics.track(`Batched ${n}`, {n});
          note('sent identify and 4 tracks with the batching delivery strategy (size 3, 500 ms)');
        }"""
    )
    events = wait_for_events(server, 5)
    tab.note(f"eventyard stored {len(events)} events: {', '.join(e['type'] for e in events)}")

    assert len(events) == 5, events
    got = by_label(events)
    for event in events:
        assert_browser_event(event, SEGMENT_LIBRARY, anonymous_id)
        assert event["userId"] == "user-3"
    assert got["identify"]["traits"] == {"plan": "team"}
    for n in (1, 2, 3, 4):
        assert got[f"Batched {n}"]["type"] == "track"
        assert got[f"Batched {n}"]["properties"] == {"n": n}
    # a full batch of 3, then the other 2 when the 500 ms timeout fires; all to apiHost + /b
    posts = tab.paths_to(server.url, "POST")
    assert set(posts) == {"/v1/b"}
    assert len(posts) < 5, f"the events were not batched: {posts}"
    assert {urlsplit(u).path for u in tab.preflights} == {"/v1/b"}
    tab.assert_clean(server)


def test_rudderstack_analytics_js_sends_every_call_type(tab: Tab, server: ServerProcess) -> None:
    tab.load_script(RUDDER_UMD)
    anonymous_id = tab.page.evaluate(
        """({writeKey, url}) => new Promise((resolve, reject) => {
          const ra = new rudderanalytics.RudderAnalytics();
          ra.load(writeKey, url, {
            configUrl: url,
            polyfillIfRequired: false,
            onLoaded: () => note(`@rudderstack/analytics-js loaded its source config from ${url}`),
          });
          ra.ready(() => {
            window.ra = ra;
            resolve(ra.getAnonymousId());
          });
          setTimeout(() => reject(new Error('the SDK was not ready within 10 s')), 10000);
        })""",
        {"writeKey": server.write_key, "url": server.url},
    )
    tab.page.evaluate(
        """() => {
          ra.page('Docs', 'Getting Started', {section: 'intro'});
          ra.track('Signed Up', {plan: 'pro'});
          ra.identify('user-2', {email: 'grace@example.com'});
          ra.group('group-2', {name: 'Initech'});
          ra.alias('user-2b');
          note('sent page, track, identify, group, alias');
        }"""
    )
    events = wait_for_events(server, 5)
    tab.note(f"eventyard stored {len(events)} events: {', '.join(e['type'] for e in events)}")

    assert len(events) == 5, events
    got = by_label(events)
    for event in events:
        assert_browser_event(event, RUDDER_LIBRARY, anonymous_id)
    assert got["page"]["name"] == "Getting Started"
    assert got["page"]["category"] == "Docs"
    assert got["page"]["properties"]["section"] == "intro"
    assert "userId" not in got["page"] or not got["page"]["userId"]
    assert got["Signed Up"]["type"] == "track"
    assert got["Signed Up"]["properties"] == {"plan": "pro"}
    assert got["identify"]["userId"] == "user-2"
    assert got["identify"]["traits"]["email"] == "grace@example.com"
    assert got["group"]["userId"] == "user-2"
    assert got["group"]["groupId"] == "group-2"
    assert got["group"]["traits"] == {"name": "Initech"}
    assert got["alias"]["userId"] == "user-2b"
    assert got["alias"]["previousId"] == "user-2"

    assert tab.paths_to(server.url, "GET") == ["/sourceConfig/"]
    sent = ["/v1/page", "/v1/track", "/v1/identify", "/v1/group", "/v1/alias"]
    assert sorted(tab.wait_for_responses(server.url, "POST", len(sent))) == sorted(sent)
    # the config request carries an Authorization header and the events JSON: all preflighted
    assert {urlsplit(u).path for u in tab.preflights} == {"/sourceConfig/", *sent}
    tab.assert_clean(server)


def test_the_browser_cannot_reach_the_internet(tab: Tab) -> None:
    """The guard the other tests rely on: an outside request fails and is recorded."""
    outcome = tab.page.evaluate(
        "() => fetch('http://example.com/').then(r => `status ${r.status}`, e => `failed: ${e}`)"
    )
    assert outcome.startswith("failed"), outcome
    assert tab.outside == ["http://example.com/"]

"""The web console in a real headless Chromium against a real ``eventyard serve``.

A person signs in with a token (with the keyboard only, too), watches an event sent with
analytics-python arrive in the live debugger, adds a webhook destination through the form
generated from its settings schema (and the webhook then receives signed events), opens a
profile and splits a merge, and uses the console on a phone-sized screen.

Chromium gets no internet: everything but loopback goes to a closed proxy port, and every
request the console makes is recorded, so the tests also prove the console loads nothing from
outside. A screenshot of each test's last screen is saved in ``$EVENTYARD_TEST_ARTIFACTS/console``
(default: ``console-screenshots`` under pytest's temporary directory); docs/ui.md says so.

Setup: Debian ``chromium`` (tests/system-packages.txt) and the ``playwright`` Python package
(dev extras); Playwright's own browser download is never used.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import segment.analytics.client as segment

from eventyard.destinations.webhook import verify_signature
from eventyard.testing.recorder import Answer, ThreadedRecorder, WebhookRecorder
from eventyard.testing.server import ServerProcess
from eventyard.testing.services import require_service
from eventyard.testing.wait import eventually

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # the dev extras are not installed; the `browser` fixture says so
    sync_playwright = None

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
LOOPBACK = "127.0.0.1"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    # Everything but loopback (which Chromium never proxies) goes to a closed port and fails.
    "--proxy-server=http://127.0.0.1:9",
]
LAPTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}
#: How long the page may take to show something the server does (a real server, a busy machine).
UI_TIMEOUT_MS = 20_000


def artifacts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = os.environ.get("EVENTYARD_TEST_ARTIFACTS")
    path = Path(base) / "console" if base else tmp_path_factory.getbasetemp() / "console-screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return artifacts_dir(tmp_path_factory)


@pytest.fixture(scope="module")
def hook() -> Iterator[ThreadedRecorder]:
    with WebhookRecorder().in_thread() as recorder:
        yield recorder


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the module; each test uses its own names, ids and destinations."""
    with ServerProcess(tmp_path_factory.mktemp("console") / "data") as srv:
        yield srv


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    require_service(sync_playwright is not None, "the playwright Python package (pip install -e '.[dev]')")
    require_service(shutil.which(CHROMIUM) is not None, f"Chromium at {CHROMIUM} (apt-get install chromium)")
    assert sync_playwright is not None
    # assertions wait as long as actions do: the server is a real process on a busy machine
    expect.set_options(timeout=UI_TIMEOUT_MS)
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()
            expect.set_options(timeout=5_000)  # Playwright's default, for other modules


@dataclass
class Console:
    """One browser context on the console, and what happened in it."""

    page: Page
    server: ServerProcess
    #: requests to anything but 127.0.0.1 (they all fail; there must be none)
    outside: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def open(self, hash_route: str) -> None:
        self.page.goto(f"{self.server.url}/ui/#/{hash_route}")

    def sign_in(self) -> None:
        self.page.goto(f"{self.server.url}/ui/")
        self.page.get_by_label("Admin token").fill(self.server.admin_token)
        self.page.get_by_role("button", name="Sign in").click()
        expect(self.page.locator("#whoami-text")).to_contain_text("owner")

    def api(self, path: str, body: dict[str, Any] | None = None, method: str | None = None) -> Any:
        """Call the control API directly (to check what the console did)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.server.url + path,
            data=data,
            method=method or ("POST" if data else "GET"),
            headers={"Authorization": f"Bearer {self.server.admin_token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def api_or_none(self, path: str) -> Any:
        """``api``, or ``None`` while the object is not there (404)."""
        try:
            return self.api(path)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                exc.close()  # the unread answer holds the connection's socket
                return None
            raise


def open_console(browser: Browser, server: ServerProcess, viewport: dict[str, int], **options: Any) -> Console:
    context = browser.new_context(viewport=viewport, **options)
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    console = Console(page, server)

    def on_request(url: str) -> None:
        if urlsplit(url).hostname != LOOPBACK and not url.startswith(("data:", "blob:")):
            console.outside.append(url)

    context.on("request", lambda req: on_request(req.url))
    page.on("pageerror", lambda exc: console.errors.append(str(exc)))
    # 4xx answers the console shows to the user are logged by Chromium as console errors
    # ("Failed to load resource"); anything else logged as an error is a fault of the page.
    page.on(
        "console",
        lambda msg: (
            console.errors.append(msg.text)
            if msg.type == "error" and not msg.text.startswith("Failed to load resource")
            else None
        ),
    )
    return console


@pytest.fixture
def console(
    browser: Browser, console_server: ServerProcess, screenshots: Path, request: pytest.FixtureRequest
) -> Iterator[Console]:
    c = open_console(browser, console_server, LAPTOP)
    try:
        yield c
        assert c.outside == [], f"the console made requests outside 127.0.0.1: {c.outside}"
        assert c.errors == [], f"errors in the page: {c.errors}"
    finally:
        try:
            c.page.evaluate("() => window.scrollTo(0, 0)")  # else the sticky top bar lands mid-picture
            c.page.screenshot(path=str(screenshots / f"{request.node.name}.png"), full_page=True)
        finally:
            c.page.context.close()


def segment_client(server: ServerProcess) -> Any:
    """analytics-python, unchanged, sending to the server (sync mode: a failed send raises)."""
    return segment.Client(server.write_key, host=server.url, sync_mode=True, max_retries=0)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# ------------------------------------------------------------------ sign in


def test_browsers_are_sent_to_the_console_and_api_clients_are_not(console: Console) -> None:
    console.page.goto(console.server.url + "/")
    assert urlsplit(console.page.url).path == "/ui/"
    expect(console.page.get_by_role("heading", name="Sign in to eventyard")).to_be_visible()
    req = urllib.request.Request(console.server.url + "/", headers={"Accept": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(req, timeout=10)
    assert answer.value.code == 404
    assert json.loads(answer.value.read())["code"] == "not_found"


def test_sign_in_and_out_with_the_keyboard_only(console: Console) -> None:
    page = console.page
    page.goto(console.server.url + "/ui/")
    keyboard = page.keyboard
    # the token field has the focus when the page opens
    expect(page.get_by_label("Admin token")).to_be_focused()
    keyboard.type("eyt_not-a-token")
    keyboard.press("Enter")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("invalid_token: the token is not valid")
    expect(page.get_by_label("Admin token")).to_be_focused()

    page.get_by_label("Admin token").fill("")
    keyboard.type(console.server.admin_token)
    keyboard.press("Enter")
    expect(page.locator("#whoami-text")).to_contain_text("owner · all workspaces")
    assert page.evaluate("() => Object.values(sessionStorage)") == [console.server.admin_token]

    # the page has the focus after signing in; the navigation is reached with Shift+Tab,
    # each stop with a visible focus ring
    expect(page.get_by_role("main")).to_be_focused()
    for _ in range(12):
        keyboard.press("Shift+Tab")
        if page.evaluate("() => document.activeElement.textContent") == "Live debugger":
            break
    focused = page.evaluate(
        "() => { const s = getComputedStyle(document.activeElement);"
        " return {text: document.activeElement.textContent, outline: s.outlineStyle, width: s.outlineWidth}; }"
    )
    assert focused == {"text": "Live debugger", "outline": "solid", "width": "3px"}, focused
    keyboard.press("Enter")
    expect(page).to_have_url(f"{console.server.url}/ui/#/live")
    expect(page.get_by_role("heading", name="Live debugger", level=1)).to_be_visible()
    # the skip link moves the focus to the page without leaving it
    page.get_by_role("link", name="Skip to content").focus()
    keyboard.press("Enter")
    expect(page.get_by_role("main")).to_be_focused()
    expect(page).to_have_url(f"{console.server.url}/ui/#/live")

    page.get_by_role("button", name="Sign out").focus()
    keyboard.press("Enter")
    expect(page.get_by_label("Admin token")).to_be_focused()
    assert page.evaluate("() => sessionStorage.length") == 0


def test_a_viewer_sees_the_pages_without_the_forms_that_change_things(console: Console) -> None:
    made = console.api("/api/v1/tokens", {"name": unique("viewer"), "role": "viewer", "workspace": "default"})
    page = console.page
    page.goto(f"{console.server.url}/ui/")
    page.get_by_label("Admin token").fill(made["data"]["token"])
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#whoami-text")).to_contain_text("viewer · workspace default")
    expect(page.get_by_role("link", name="default", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Create source")).to_have_count(0)
    console.open("destinations")
    expect(page.get_by_role("heading", name="Destinations", level=1)).to_be_visible()
    expect(page.get_by_role("link", name="Add destination")).to_have_count(0)
    console.open("privacy")
    expect(page.get_by_role("alert")).to_contain_text("forbidden: reading the audit trail needs an owner token")
    expect(page.get_by_role("button", name="Create regulation")).to_have_count(0)


# ------------------------------------------------------------------ live debugger


def test_an_event_sent_with_analytics_python_arrives_in_the_live_debugger(console: Console) -> None:
    console.sign_in()
    console.open("live")
    page = console.page
    expect(page.get_by_role("status").filter(has_text="Live")).to_be_visible()
    stream = page.get_by_role("log")

    name = unique("Checkout Started")
    client = segment_client(console.server)
    client.track(user_id="live-user", event=name, properties={"cart": 3}, message_id=unique("live"))
    client.flush()
    item = stream.get_by_role("button").filter(has_text=name)
    expect(item).to_be_visible()
    expect(item).to_contain_text("user live-user")
    item.click()
    detail = page.locator(".live-detail")
    expect(detail.get_by_role("heading", name=name)).to_be_visible()
    expect(detail.locator("pre.json")).to_contain_text('"cart": 3')
    expect(detail.locator("pre.json")).to_contain_text('"name": "analytics-python"')
    detail.get_by_role("button", name="Show what happened to it").click()
    expect(detail.get_by_role("table", name="Trace")).to_contain_text("accepted")

    # a refused event shows up with its reason
    refused = urllib.request.Request(
        console.server.url + "/v1/track",
        data=json.dumps({"userId": "live-user", "properties": {"why": "no event name"}}).encode(),
        headers={"Content-Type": "application/json", "Authorization": "Basic " + _basic(console.server.write_key)},
    )
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(refused, timeout=10)
    answer.value.close()  # unread, it would keep the socket open until a garbage collection
    assert answer.value.code == 400
    rejected = stream.get_by_role("button").filter(has_text="Rejected: missing_event")
    expect(rejected.first).to_be_visible()
    rejected.first.click()
    expect(detail).to_contain_text("a track call needs a non-empty `event` name")
    expect(detail.locator("pre.json")).to_contain_text('"why": "no event name"')

    # paused: new events wait until resumed
    page.get_by_role("button", name="Pause").click()
    held = unique("While Paused")
    client.track(user_id="live-user", event=held)
    client.flush()
    expect(page.get_by_role("status").filter(has_text="Paused · 1 new event(s) waiting")).to_be_visible()
    expect(stream.get_by_role("button").filter(has_text=held)).to_have_count(0)
    page.get_by_role("button", name="Resume").click()
    expect(stream.get_by_role("button").filter(has_text=held)).to_be_visible()

    # the list is one tab stop; the arrow keys move in it and Enter opens an event
    newest = stream.get_by_role("button").first
    expect(newest).to_contain_text(held)
    newest.focus()
    page.keyboard.press("ArrowDown")
    expect(stream.get_by_role("button").nth(1)).to_be_focused()
    page.keyboard.press("ArrowUp")
    expect(newest).to_be_focused()
    page.keyboard.press("Enter")
    expect(detail.get_by_role("heading", name=held)).to_be_visible()
    assert stream.locator("[tabindex='0']").count() == 1

    # filtered by event name: only that event
    page.get_by_label("Event name").fill(name)
    page.get_by_role("button", name="Apply filters").click()
    expect(stream.get_by_role("button").filter(has_text=name)).to_be_visible()
    expect(stream.get_by_role("button").filter(has_text=held)).to_have_count(0)
    expect(stream.get_by_role("button").filter(has_text="Rejected")).to_have_count(0)


def _basic(write_key: str) -> str:
    return base64.b64encode(f"{write_key}:".encode()).decode()


# ------------------------------------------------------------------ destinations


def test_add_a_webhook_destination_through_the_generated_form(console: Console, hook: ThreadedRecorder) -> None:
    console.sign_in()
    console.open("destinations")
    page = console.page
    page.get_by_role("link", name="Add destination").click()
    name = unique("hook")
    secret = "whsec-" + uuid.uuid4().hex
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Type").select_option("webhook")
    # the fields come from the webhook's settings schema
    page.get_by_label("Url (required)").fill(f"{hook.url}/{name}")
    page.get_by_label("Method").select_option("PUT")
    secret_field = page.get_by_label("Secret", exact=True)
    expect(secret_field).to_have_attribute("type", "password")
    secret_field.fill(secret)
    page.get_by_label("Connect a source").select_option(label="default")
    page.get_by_role("button", name="Add destination").click()
    expect(page.get_by_role("heading", name=f"Destination {name}")).to_be_visible()

    stored = console.api(f"/api/v1/destinations/{name}")["data"]
    assert stored["type"] == "webhook"
    assert stored["settings"]["url"] == f"{hook.url}/{name}"
    assert stored["settings"]["method"] == "PUT"
    assert secret not in json.dumps(stored), "the secret is never returned in full"
    connections = console.api("/api/v1/connections")["data"]
    assert any(c["destinationId"] == stored["id"] for c in connections)

    # the webhook receives events, signed with the secret typed into the form
    client = segment_client(console.server)
    first = unique("form")
    client.track(user_id="hook-user", event="Form Hook", message_id=first)
    client.flush()
    request = eventually(
        lambda: [r for r in hook.requests if r.path == f"/{name}"], lambda got: len(got) >= 1, timeout=20
    )[0]
    assert request.method == "PUT"
    assert request.json["messageId"] == first
    headers = request.headers
    assert verify_signature(secret, request.body, headers["x-eventyard-signature"], headers["x-eventyard-timestamp"])

    # edit: the secret is shown redacted and kept when unchanged
    expect(page.get_by_role("heading", name="Settings")).to_be_visible()
    secret_field = page.get_by_label("Secret", exact=True)
    assert secret_field.input_value().startswith("…")
    page.get_by_label("Timeout seconds").fill("7")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status").filter(has_text="Saved.")).to_be_visible()
    assert console.api(f"/api/v1/destinations/{name}")["data"]["settings"]["timeout_seconds"] == 7
    second = unique("form")
    client.track(user_id="hook-user", event="Form Hook", message_id=second)
    client.flush()
    request = eventually(
        lambda: [r for r in hook.requests if r.path == f"/{name}" and (r.json or {}).get("messageId") == second],
        lambda got: len(got) >= 1,
        timeout=20,
    )[0]
    headers = request.headers
    assert verify_signature(secret, request.body, headers["x-eventyard-signature"], headers["x-eventyard-timestamp"])

    # the delivery funnel counts what was delivered
    page.reload()
    funnel = page.get_by_role("img", name=f"Delivery funnel of {name}")
    expect(funnel).to_be_visible()
    page.get_by_text("Show the numbers").click()
    expect(page.get_by_role("row", name="Delivered 2")).to_be_visible()


def test_dead_letters_are_resent_and_events_replayed_from_the_console(console: Console) -> None:
    # the receiver refuses the first request (400: dead-lettered at once), then accepts
    with WebhookRecorder(Answer(status=400)).in_thread() as refusing:
        name = unique("refusing")
        source = console.api("/api/v1/sources", {"name": unique("dl-source")})["data"]
        console.api("/api/v1/destinations", {"name": name, "type": "webhook", "settings": {"url": refusing.url}})
        console.api("/api/v1/connections", {"source": source["id"], "destination": name}, method="PUT")
        client = segment.Client(source["writeKey"], host=console.server.url, sync_mode=True, max_retries=0)
        message_id = unique("dead")
        client.track(user_id="dl-user", event="Dead Letter", message_id=message_id)
        client.flush()
        refusing.wait_for(1, timeout=20)
        eventually(
            lambda: console.api(f"/api/v1/destinations/{name}/dead-letters")["data"],
            lambda got: len(got) == 1,
            timeout=20,
        )
        console.sign_in()
        console.open(f"destinations/{name}")
        page = console.page
        dead = page.locator("section").filter(has=page.get_by_role("heading", name="Dead letters"))
        expect(dead).to_contain_text(message_id)
        dead.get_by_role("checkbox").check()
        dead.get_by_role("button", name="Re-send selected").click()
        expect(dead.get_by_role("status").filter(has_text="1 event(s) queued again.")).to_be_visible()
        resent = refusing.wait_for(2, timeout=20)[1]
        assert resent.json["messageId"] == message_id

        replay = page.locator("form").filter(has=page.get_by_role("heading", name="Replay"))
        replay.get_by_label("Source").select_option(label=source["name"])
        replay.get_by_role("button", name="Replay").click()
        expect(replay.get_by_role("status")).to_contain_text("Read 1 event(s), queued 1, filtered 0.")
        replayed = refusing.wait_for(3, timeout=20)[2]
        assert replayed.json["messageId"] == message_id


def test_the_catalog_shows_violations_of_the_tracking_plan(console: Console) -> None:
    source = console.api("/api/v1/sources", {"name": unique("planned")})["data"]
    plan = unique("shop")
    rule = {
        "type": "TRACK",
        "key": "Order Completed",
        "version": 1,
        "jsonSchema": {
            "type": "object",
            "properties": {
                "properties": {
                    "type": "object",
                    "required": ["order_id"],
                    "properties": {"order_id": {"type": "string"}},
                }
            },
        },
    }
    console.api(f"/api/v1/tracking-plans/{plan}", {"name": plan, "rules": [rule]}, method="PUT")
    console.api(f"/api/v1/sources/{source['id']}/tracking-plan", {"plan": plan}, method="PUT")
    client = segment.Client(source["writeKey"], host=console.server.url, sync_mode=True, max_retries=0)
    client.track(user_id="plan-user", event="Order Completed", properties={"total": 5})
    client.flush()
    eventually(
        lambda: console.api(f"/api/v1/sources/{source['id']}/violations")["data"],
        lambda got: len(got) >= 1,
        timeout=20,
    )
    console.sign_in()
    console.open(f"catalog?source={source['id']}")
    page = console.page
    entry = page.locator("details.catalog-event").filter(has_text="Order Completed")
    expect(entry).to_contain_text("1 events")
    violations = page.locator("section").filter(has=page.get_by_role("heading", name="Tracking plan violations"))
    expect(violations).to_contain_text(f"Plan {plan}")
    row = violations.get_by_role("row").filter(has_text="properties.order_id")
    expect(row).to_contain_text("Required")


def test_a_form_error_from_the_api_is_shown(console: Console) -> None:
    console.sign_in()
    console.open("destinations/new")
    page = console.page
    page.get_by_label("Name", exact=True).fill(unique("bad"))
    page.get_by_label("Type").select_option("webhook")
    page.get_by_label("Url (required)").fill("http://127.0.0.1:9/x")
    page.get_by_label("Max batch size").fill("2.5")
    page.get_by_role("button", name="Add destination").click()
    expect(page.get_by_role("alert")).to_contain_text("Max batch size must be a whole number")
    page.get_by_label("Max batch size").fill("100")
    page.get_by_label("Headers").fill('{"X-Count": 3}')
    page.get_by_role("button", name="Add destination").click()
    # the server's validation message, in the API's error shape, reaches the user
    expect(page.get_by_role("alert")).to_contain_text("invalid_body: webhook settings")


# ------------------------------------------------------------------ sources and catalog


def test_a_source_shows_its_snippets_volume_and_catalog(console: Console) -> None:
    client = segment_client(console.server)
    event = unique("Plan Chosen")
    for n in range(3):
        client.track(user_id=f"vol-{n}", event=event, properties={"plan": "pro", "seats": n})
    client.flush()
    console.sign_in()
    page = console.page
    page.get_by_role("link", name="default", exact=True).click()
    expect(page.get_by_role("heading", name="Source default")).to_be_visible()
    snippet = page.get_by_role("tabpanel")
    expect(snippet).to_contain_text(f"writeKey: '{console.server.write_key}'")
    expect(snippet).to_contain_text(f"cdnURL: '{console.server.url}'")
    page.get_by_role("tab", name="Python").click()
    expect(page.get_by_role("tabpanel")).to_contain_text(f"analytics.host = '{console.server.url}'")
    page.get_by_role("tab", name="Python").press("ArrowRight")
    expect(page.get_by_role("tab", name="Node.js")).to_be_focused()
    expect(page.get_by_role("tabpanel")).to_contain_text(f"host: '{console.server.url}'")
    chart = page.get_by_role("img", name="Events per hour by event name, last 24 hours")
    expect(chart).to_be_visible()
    assert chart.locator("rect").count() >= 1
    expect(page.locator(".legend")).to_contain_text(event)

    page.get_by_role("link", name="Its schema catalog").click()
    entry = page.locator("details.catalog-event").filter(has_text=event)
    expect(entry).to_contain_text("3 events")
    entry.locator("summary").click()
    row = entry.get_by_role("row").filter(has_text="properties.seats")
    expect(row).to_contain_text("integer")
    expect(row).to_contain_text("3 (100%)")


# ------------------------------------------------------------------ profiles


def test_open_a_profile_and_split_a_merge(console: Console) -> None:
    client = segment_client(console.server)
    anon, user = unique("anon"), unique("user")
    email = f"{user}@example.com"
    # one event at a time, each resolved before the next, so the last one merges two stored
    # profiles (events resolved in one batch would make one profile without a merge)
    client.page(anonymous_id=anon, name="Pricing")
    assert eventually(lambda: console.api_or_none(f"/api/v1/profiles/anonymous_id:{anon}"), bool) is not None
    client.identify(user_id=user, traits={"plan": "team"})
    assert eventually(lambda: console.api_or_none(f"/api/v1/profiles/user_id:{user}"), bool) is not None
    client.identify(user_id=user, anonymous_id=anon, traits={"email": email})  # merges the two
    explained = eventually(
        lambda: console.api_or_none(f"/api/v1/profiles/email:{email}/explain"),
        lambda got: got is not None and len(got["merges"]) == 1,
    )
    assert explained is not None and len(explained["merges"]) == 1, explained
    console.sign_in()
    page = console.page
    page.get_by_role("link", name="Profiles").click()
    search = page.get_by_label("Identifier or profile id")
    search.fill(f"email:{email}")
    search.press("Enter")
    expect(page.get_by_role("heading", name="Traits")).to_be_visible()
    expect(page.get_by_role("row").filter(has_text="plan")).to_contain_text("team")
    identifiers = page.locator("section").filter(has=page.get_by_role("heading", name="Identifiers"))
    for ident in (f"user_id:{user}", f"anonymous_id:{anon}", f"email:{email}"):
        expect(identifiers).to_contain_text(ident)
    merges = page.locator("section").filter(has=page.get_by_role("heading", name="Merge history"))
    expect(merges).to_contain_text("shared_identifier")
    timeline = page.locator("ol.timeline")
    expect(timeline).to_contain_text("page Pricing")

    page.once("dialog", lambda dialog: dialog.accept())
    merges.get_by_role("button", name="Split merge").click()
    expect(page.get_by_role("status").filter(has_text="Split:")).to_be_visible()
    expect(merges).to_contain_text("split")
    after = console.api(f"/api/v1/profiles/email:{email}/explain")
    assert [m["undone_at"] is not None for m in after["merges"]] == [True]


def test_a_profile_that_does_not_exist_says_so(console: Console) -> None:
    console.sign_in()
    console.open("profiles?ref=email:nobody@example.com")
    expect(console.page.get_by_role("alert")).to_contain_text(
        "not_found: no profile with email:nobody@example.com in workspace default"
    )


# ------------------------------------------------------------------ privacy


def test_privacy_shows_regulations_and_the_audit_log(console: Console) -> None:
    console.sign_in()
    console.open("privacy")
    page = console.page
    subject = unique("forget-me")
    page.get_by_label("Regulation type").select_option("SUPPRESS_ONLY")
    page.get_by_label("Subject ids").fill(subject)
    page.get_by_role("button", name="Create regulation").click()
    regulations = page.locator("section").filter(has=page.get_by_role("heading", name="Regulations"))
    expect(regulations).to_contain_text(f"USER_ID: {subject}")
    expect(regulations).to_contain_text("suppression")
    audit = page.locator("section").filter(has=page.get_by_role("heading", name="Audit log"))
    expect(audit).to_contain_text("regulation.create")


# ------------------------------------------------------------------ phone


def test_the_console_on_a_phone(browser: Browser, console_server: ServerProcess, screenshots: Path) -> None:
    c = open_console(browser, console_server, PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    page = c.page
    try:
        c.sign_in()
        menu = page.get_by_role("button", name="Menu")
        expect(menu).to_be_visible()
        expect(menu).to_have_attribute("aria-expanded", "false")
        expect(page.get_by_role("navigation", name="Console")).to_be_hidden()
        menu.click()
        expect(menu).to_have_attribute("aria-expanded", "true")
        page.get_by_role("link", name="Live debugger").click()
        expect(page.get_by_role("navigation", name="Console")).to_be_hidden()
        expect(page.get_by_role("heading", name="Live debugger", level=1)).to_be_visible()
        c.open("sources")
        expect(page.get_by_role("link", name="default", exact=True)).to_be_visible()
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"the page is {width}px wide on a {PHONE['width']}px screen"
        page.screenshot(path=str(screenshots / "phone-390x844-sources.png"), full_page=True)
        c.open("destinations/new")
        page.get_by_label("Type").select_option("webhook")
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"the form is {width}px wide on a {PHONE['width']}px screen"
        page.screenshot(path=str(screenshots / "phone-390x844-destination-form.png"), full_page=True)
        assert c.outside == []
        assert c.errors == []
    finally:
        page.context.close()


def test_the_console_ships_no_code_from_elsewhere(console: Console) -> None:
    """Every script and stylesheet comes from this server, under a strict CSP."""
    console.sign_in()
    with urllib.request.urlopen(console.server.url + "/ui/", timeout=10) as resp:
        csp = resp.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp
    sources = console.page.evaluate(
        "() => [...document.querySelectorAll('script[src], link[href]')].map(e => e.src || e.href)"
    )
    assert sources and all(s.startswith(console.server.url + "/ui/") for s in sources), sources

"""How the web console is served: ``/`` sends browsers to ``/ui/``, API clients see no change,
the static files come with security headers, and every module the console imports is there."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from eventyard.testing.asgi import call
from eventyard.testing.harness import AppHarness
from eventyard.ui.app import CONTENT_SECURITY_POLICY, STATIC_DIR

HTML = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
ROOT = Path(__file__).resolve().parents[2]


async def test_a_browser_at_the_root_is_sent_to_the_console(harness: AppHarness) -> None:
    for method in ("GET", "HEAD"):
        resp = await call(harness.app, method, "/", headers={"Accept": HTML})
        assert resp.status == 303
        assert resp.headers["location"] == "/ui/"


@pytest.mark.parametrize(
    ("method", "accept"),
    [("GET", "application/json"), ("GET", "*/*"), ("GET", None), ("POST", HTML), ("DELETE", HTML)],
)
async def test_api_clients_at_the_root_get_the_usual_404(harness: AppHarness, method: str, accept: str | None) -> None:
    headers = {"Accept": accept} if accept else {}
    resp = await call(harness.app, method, "/", headers=headers)
    assert resp.status == 404
    assert resp.json() == {"code": "not_found", "message": "no endpoint at /"}


async def test_the_console_page_and_its_modules_are_served_with_a_strict_policy(harness: AppHarness) -> None:
    resp = await call(harness.app, "GET", "/ui/")
    assert resp.status == 200
    assert resp.headers["content-type"].startswith("text/html")
    assert resp.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert resp.headers["x-content-type-options"] == "nosniff"
    # (the body itself is checked in a real browser: tests/e2e/test_console.py)
    assert int(resp.headers["content-length"]) == (STATIC_DIR / "index.html").stat().st_size
    script = await call(harness.app, "GET", "/ui/js/main.js")
    assert script.status == 200
    assert script.headers["content-type"].split(";")[0] in ("text/javascript", "application/javascript")
    style = await call(harness.app, "GET", "/ui/css/console.css")
    assert style.headers["content-type"].startswith("text/css")
    # no trailing slash: redirected to the page
    bare = await call(harness.app, "GET", "/ui")
    assert bare.status in (307, 308) and bare.headers["location"].endswith("/ui/")


async def test_a_missing_console_file_is_a_404_in_the_api_shape(harness: AppHarness) -> None:
    resp = await call(harness.app, "GET", "/ui/js/nope.js")
    assert resp.status == 404
    assert resp.json()["code"] == "not_found"


async def test_the_console_is_not_part_of_the_openapi_document(harness: AppHarness) -> None:
    paths = (await call(harness.app, "GET", "/api/v1/openapi.json")).json()["paths"]
    assert "/" not in paths
    assert not [p for p in paths if p.startswith("/ui")]


IMPORT = re.compile(r"""^\s*import\s+(?:[\w{}\s,*]+\s+from\s+)?['"](\.{1,2}/[^'"]+)['"]""", re.MULTILINE)
REFERENCE = re.compile(r"""(?:src|href)="([^"#:]+)\"""")


def test_every_module_the_console_imports_exists() -> None:
    """A missing file would only show in a browser; follow the import graph from index.html."""
    index = STATIC_DIR / "index.html"
    pending = [STATIC_DIR / ref for ref in REFERENCE.findall(index.read_text())]
    seen: set[Path] = {index.resolve()}
    while pending:
        path = pending.pop().resolve()
        if path in seen:
            continue
        assert path.is_file(), f"{path.relative_to(STATIC_DIR.resolve())} is referenced but missing"
        seen.add(path)
        if path.suffix == ".js":
            pending += [path.parent / ref for ref in IMPORT.findall(path.read_text())]
    shipped = {p.resolve() for p in STATIC_DIR.rglob("*") if p.is_file()}
    assert shipped - seen == set(), f"files no page uses: {sorted(str(p) for p in shipped - seen)}"


def test_nothing_in_the_console_loads_from_another_origin() -> None:
    for path in STATIC_DIR.rglob("*"):
        if path.suffix in (".js", ".css", ".html"):
            text = path.read_text()
            assert not re.search(r"""(?:src|href|url\(|from\s)\s*=?\s*['"]?(?:https?:)?//""", text), path.name


@pytest.mark.slow
def test_the_wheel_contains_the_console(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("eventyard-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in STATIC_DIR.rglob("*"):
        if path.is_file():
            assert f"eventyard/ui/static/{path.relative_to(STATIC_DIR).as_posix()}" in names


def _luminance(color: str) -> float:
    r, g, b = (int(color[i : i + 2], 16) / 255 for i in (1, 3, 5))

    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)


def contrast(a: str, b: str) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


#: (text, background) pairs of the stylesheet's colour variables that carry text.
TEXT_PAIRS = [
    ("text", "bg"),
    ("text", "panel"),
    ("muted", "bg"),
    ("muted", "panel"),
    ("muted", "code-bg"),
    ("accent", "panel"),
    ("accent", "bg"),
    ("accent-text", "accent"),
    ("ok", "ok-bg"),
    ("warn", "warn-bg"),
    ("bad", "bad-bg"),
    ("info", "info-bg"),
    ("text", "info-bg"),
    ("ok", "code-bg"),
    ("warn", "code-bg"),
    ("info", "code-bg"),
]


def test_text_colours_meet_wcag_aa_contrast_in_both_schemes() -> None:
    css = (STATIC_DIR / "css" / "console.css").read_text()
    light = dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{6})", css.split("@media (prefers-color-scheme: dark)")[0]))
    dark_block = css.split("@media (prefers-color-scheme: dark)")[1].split("\n}\n")[0]
    dark = {**light, **dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{6})", dark_block))}
    assert light["bg"] != dark["bg"] and len(light) >= 17, "the colour variables were not found"
    for scheme, colours in (("light", light), ("dark", dark)):
        for fg, bg in TEXT_PAIRS:
            ratio = contrast(colours[fg], colours[bg])
            assert ratio >= 4.5, f"{scheme}: --{fg} on --{bg} is {ratio:.2f}:1"
        assert contrast(colours["focus"], colours["panel"]) >= 3.0, f"{scheme}: the focus ring is hard to see"

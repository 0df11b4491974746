"""`eventyard send`: send one event to a running server (a smoke test without an SDK)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from typing import Any

from eventyard.cli.common import console, fail


def _json_arg(name: str, raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        fail(f"--{name} is not valid JSON: {exc.msg} at column {exc.colno}")
    if not isinstance(value, dict):
        fail(f"--{name} must be a JSON object")
    return value


def run(
    url: str,
    write_key: str,
    kind: str,
    event: str | None,
    name: str | None,
    user_id: str | None,
    anonymous_id: str | None,
    properties: str | None,
    traits: str | None,
) -> None:
    body: dict[str, Any] = {}
    for key, value in (
        ("event", event),
        ("name", name),
        ("userId", user_id),
        ("anonymousId", anonymous_id),
        ("properties", _json_arg("properties", properties)),
        ("traits", _json_arg("traits", traits)),
    ):
        if value is not None:
            body[key] = value
    body["context"] = {"library": {"name": "eventyard-cli"}}
    auth = base64.b64encode(f"{write_key}:".encode()).decode()
    req = urllib.request.Request(
        url.rstrip("/") + f"/v1/{kind}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Basic {auth}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            console.print(f"[green]{resp.status}[/] {resp.read().decode()}", highlight=False)
    except urllib.error.HTTPError as exc:
        fail(f"{exc.code} {exc.read().decode()}")
    except urllib.error.URLError as exc:
        fail(f"cannot reach {url}: {exc.reason}")

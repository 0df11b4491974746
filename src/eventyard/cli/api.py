"""A small client of the admin API for CLI commands (errors become clear messages)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from eventyard.cli.common import fail
from eventyard.control.audit import cli_agent


def call(url: str, token: str, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
    target = url.rstrip("/") + path
    if params:
        target += "?" + urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        target,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json", "User-Agent": cli_agent()},
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read().decode("utf-8", "replace")
        try:
            message = json.loads(raw).get("message", raw)
        except (json.JSONDecodeError, AttributeError):
            message = raw
        fail(f"{exc.code}: {message}")
    except urllib.error.URLError as exc:
        fail(f"cannot reach {url}: {exc.reason}")

"""What browser SDKs fetch before they send, and the tracking pixel.

- ``GET /v1/projects/{writeKey}/settings``: the settings analytics.js (``@segment/
  analytics-next``) loads from its CDN. Pointing ``cdnURL`` at eventyard makes the SDK send
  its events here; remote metrics are switched off so nothing goes to the internet.
- ``GET /sourceConfig/?writeKey=...``: the source configuration RudderStack's JavaScript SDK
  (v3) loads from ``configUrl`` before it starts; no device-mode destinations.
- ``GET /pixel/v1/track|page?writeKey=...&...``: an event from query parameters (dotted
  names nest: ``context.page.path=/x``), answered with a 1x1 transparent GIF.
"""

from __future__ import annotations

import base64
from typing import Any

import msgspec

from eventyard.state.base import Source

PIXEL_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")

_RESERVED_QUERY = frozenset({"writeKey", "write_key"})


def public_base(scope: Any, public_url: str | None) -> tuple[str, str]:
    """(protocol, host[:port]) under which browsers reach this server."""
    if public_url:
        proto, _, rest = public_url.partition("://")
        return proto, rest.rstrip("/")
    host = ""
    proto = scope.get("scheme", "http")
    for name, value in scope["headers"]:
        if name == b"host":
            host = value.decode("latin-1")
        elif name == b"x-forwarded-proto":
            proto = value.decode("latin-1").split(",")[0].strip()
    if not host:
        server = scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}"
    return proto, host


def segment_settings(source: Source, base: tuple[str, str], consent: dict[str, Any] | None = None) -> bytes:
    """analytics.js CDN settings; ``consent``: the source's ``consentSettings`` when its
    workspace has consent categories (``privacy.config.browser_consent_settings``)."""
    proto, host = base
    api_host = f"{host}/v1"
    settings = {
        "integrations": {
            "Segment.io": {
                "apiKey": source.write_key,
                "apiHost": api_host,
                "protocol": proto,
                "unbundledIntegrations": [],
                "addBundledMetadata": True,
                "maybeBundledConfigIds": {},
            }
        },
        "metrics": {"sampleRate": 0, "host": api_host},
        "remotePlugins": [],
        "consentSettings": consent or {"allCategories": [], "hasUnmappedDestinations": False},
    }
    return msgspec.json.encode(settings)


def rudderstack_source_config(source: Source) -> bytes:
    config = {
        "isHosted": False,
        "source": {
            "id": source.id,
            "name": source.name,
            "writeKey": source.write_key,
            "workspaceId": source.workspace_id,
            "enabled": source.enabled,
            "deleted": False,
            "config": {},
            "sourceDefinition": {"id": "eventyard-javascript", "name": "Javascript", "category": None},
            "destinations": [],
        },
    }
    return msgspec.json.encode(config)


def pixel_event(params: dict[str, str]) -> dict[str, Any]:
    """Build an event from pixel query parameters; dotted names become nested objects."""
    event: dict[str, Any] = {}
    for name, value in params.items():
        if name in _RESERVED_QUERY or not name:
            continue
        parts = name.split(".")
        target = event
        for part in parts[:-1]:
            child = target.get(part)
            if not isinstance(child, dict):
                child = {}
                target[part] = child
            target = child
        target[parts[-1]] = value
    return event

"""Finding the write key of a request: Basic auth, the body, or the query string."""

from __future__ import annotations

import binascii
import functools
from base64 import b64decode
from urllib.parse import parse_qs


@functools.lru_cache(maxsize=4096)
def basic_user(authorization: str) -> str | None:
    """The user part of ``Authorization: Basic ...`` (the write key; password ignored).

    Cached: SDKs send the same header with every request.
    """
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = b64decode(value.strip(), validate=False).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return None
    user = decoded.split(":", 1)[0]
    return user or None


def query_params(query_string: bytes) -> dict[str, str]:
    """The first value of each query parameter."""
    if not query_string:
        return {}
    parsed = parse_qs(query_string.decode("latin-1"), keep_blank_values=True)
    return {k: v[0] for k, v in parsed.items()}


def write_key_from_query(params: dict[str, str]) -> str | None:
    return params.get("writeKey") or params.get("write_key") or None

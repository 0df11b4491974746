"""Identifiers and secrets minted by eventyard."""

from __future__ import annotations

import hashlib
import secrets


def new_id(prefix: str) -> str:
    """A short random id with a readable prefix, such as ``src_3kq9...``."""
    return f"{prefix}_{secrets.token_hex(8)}"


def new_write_key() -> str:
    return secrets.token_urlsafe(24)


def new_token() -> str:
    return "eyt_" + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()

"""Helpers of the PostgreSQL warehouse tests: a throwaway database on the real server."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator

import psycopg
from psycopg import sql

from eventyard.testing.services import port_open

HOST, PORT = "127.0.0.1", 5432
ADMIN_DSN = f"postgresql://postgres@{HOST}:{PORT}/postgres"


def postgres_is_up() -> bool:
    if not port_open(HOST, PORT):
        return False
    try:
        with psycopg.connect(ADMIN_DSN, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A new database ``eventyard_test_<hex>``; yields its DSN and drops it afterwards."""
    name = f"eventyard_test_{secrets.token_hex(6)}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"postgresql://postgres@{HOST}:{PORT}/{name}"
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def new_prefix() -> str:
    """A schema prefix no other test uses (letters only, so snake_case leaves it alone)."""
    return "t" + "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(8)) + "_"

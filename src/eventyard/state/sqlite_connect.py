"""Opening the state's SQLite files the same way everywhere (identity graph, audit trail)."""

from __future__ import annotations

import sqlite3


def connect(path: str, read_only: bool, busy_timeout_ms: int = 10000) -> sqlite3.Connection:
    """An autocommit connection usable from any thread. Writers use WAL and ``synchronous=FULL``
    (a commit is on disk when it returns); readers are ``query_only``."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    if read_only:
        conn.execute("PRAGMA query_only=ON")
    else:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
    return conn

"""Versioned schema migrations of the state store, applied in order, never edited once shipped."""

from __future__ import annotations

SQLITE: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE workspaces (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            created_at REAL NOT NULL
        );
        CREATE TABLE sources (
            id TEXT PRIMARY KEY,
            workspace_id TEXT NOT NULL REFERENCES workspaces(id),
            name TEXT NOT NULL,
            write_key TEXT NOT NULL UNIQUE,
            enabled INTEGER NOT NULL DEFAULT 1,
            limits TEXT NOT NULL DEFAULT '{}',
            created_at REAL NOT NULL,
            UNIQUE (workspace_id, name)
        );
        CREATE TABLE tokens (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            role TEXT NOT NULL,
            token_hash TEXT NOT NULL UNIQUE,
            workspace_id TEXT REFERENCES workspaces(id),
            created_at REAL NOT NULL
        );
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta (key, value) VALUES ('config_version', '0');
        """,
    ),
]

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
    (
        2,
        """
        CREATE TABLE destinations (
            id TEXT PRIMARY KEY,
            workspace_id TEXT NOT NULL REFERENCES workspaces(id),
            name TEXT NOT NULL,
            type TEXT NOT NULL,
            settings TEXT NOT NULL DEFAULT '{}',
            enabled INTEGER NOT NULL DEFAULT 1,
            delivery TEXT NOT NULL DEFAULT '{}',
            actions TEXT NOT NULL DEFAULT '[]',
            created_at REAL NOT NULL,
            UNIQUE (workspace_id, name)
        );
        CREATE TABLE connections (
            source_id TEXT NOT NULL REFERENCES sources(id),
            destination_id TEXT NOT NULL REFERENCES destinations(id),
            filters TEXT NOT NULL DEFAULT '[]',
            PRIMARY KEY (source_id, destination_id)
        );
        CREATE TABLE seen_messages (
            source_id TEXT NOT NULL,
            message_id TEXT NOT NULL,
            record_id INTEGER NOT NULL,
            seen_at REAL NOT NULL,
            PRIMARY KEY (source_id, message_id)
        ) WITHOUT ROWID;
        CREATE INDEX seen_messages_at ON seen_messages (seen_at);
        CREATE TABLE destination_health (
            destination_id TEXT PRIMARY KEY,
            status TEXT NOT NULL,
            reason TEXT NOT NULL,
            since REAL NOT NULL
        );
        """,
    ),
    (
        3,
        """
        CREATE TABLE documents (
            workspace_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            name TEXT NOT NULL,
            version INTEGER NOT NULL,
            body TEXT NOT NULL,
            created_at REAL NOT NULL,
            actor TEXT NOT NULL DEFAULT '',
            deleted INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (workspace_id, kind, name, version)
        );
        CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at REAL NOT NULL,
            workspace_id TEXT,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL,
            origin TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX audit_log_workspace ON audit_log (workspace_id, id);
        CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
            BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
        CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
            BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
        CREATE TABLE regulations (
            id TEXT PRIMARY KEY,
            workspace_id TEXT NOT NULL,
            regulation_type TEXT NOT NULL,
            subject_type TEXT NOT NULL,
            subject_ids TEXT NOT NULL,
            status TEXT NOT NULL,
            created_at REAL NOT NULL,
            finished_at REAL,
            stores TEXT NOT NULL DEFAULT '{}',
            source_id TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX regulations_workspace ON regulations (workspace_id, created_at);
        CREATE TABLE suppressions (
            workspace_id TEXT NOT NULL,
            subject_type TEXT NOT NULL,
            subject_id TEXT NOT NULL,
            regulation_id TEXT NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (workspace_id, subject_type, subject_id)
        )
        """,
    ),
    (
        4,
        """
        CREATE TABLE plan_violations (
            workspace_id TEXT NOT NULL,
            source_id TEXT NOT NULL,
            plan TEXT NOT NULL,
            event_type TEXT NOT NULL,
            event_name TEXT NOT NULL,
            field TEXT NOT NULL,
            violation_type TEXT NOT NULL,
            bucket REAL NOT NULL,
            count INTEGER NOT NULL,
            last_seen REAL NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (workspace_id, source_id, plan, event_type, event_name, field, violation_type, bucket)
        );
        CREATE INDEX plan_violations_bucket ON plan_violations (bucket)
        """,
    ),
    (
        5,
        """
        CREATE TABLE pii_findings (
            workspace_id TEXT NOT NULL,
            source_id TEXT NOT NULL,
            path TEXT NOT NULL,
            kind TEXT NOT NULL,
            count INTEGER NOT NULL,
            first_seen REAL NOT NULL,
            last_seen REAL NOT NULL,
            PRIMARY KEY (workspace_id, source_id, path, kind)
        )
        """,
    ),
]

"""Settings of identity resolution and how the runtime picks the identity store."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventyard.errors import ConfigError
from eventyard.runtime.components import make_identity_store
from eventyard.runtime.settings import Settings, load_settings
from eventyard.state.identity_postgres import PostgresIdentityStore, split_url
from eventyard.state.identity_sqlite import SQLiteIdentityStore


def test_the_identity_store_lives_in_the_state_file_by_default(tmp_path: Path) -> None:
    store = make_identity_store(Settings(data_dir=str(tmp_path)))
    assert isinstance(store, SQLiteIdentityStore) and store.path == str(tmp_path / "state.sqlite3")
    other = make_identity_store(Settings(data_dir=str(tmp_path), identity_store=f"sqlite:///{tmp_path}/ids.db"))
    assert isinstance(other, SQLiteIdentityStore) and other.path == f"{tmp_path}/ids.db"


def test_postgres_urls_name_their_schema() -> None:
    store = make_identity_store(Settings(identity_store="postgresql://u@db:5432/cdp?schema=idn&sslmode=disable"))
    assert isinstance(store, PostgresIdentityStore)
    assert (store.dsn, store.schema) == ("postgresql://u@db:5432/cdp?sslmode=disable", "idn")
    assert split_url("postgresql://u@db/cdp") == ("postgresql://u@db/cdp", "eventyard_identity")
    with pytest.raises(ConfigError, match="schema"):
        split_url("postgresql://u@db/cdp?schema=bad-name;")


def test_identity_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match="identity_store"):
        load_settings(overrides={"identity_store": "mysql://x"}, environ={})
    with pytest.raises(ConfigError, match="profile_events_retention_days"):
        load_settings(environ={"EVENTYARD_PROFILE_EVENTS_RETENTION_DAYS": "-1"})
    assert load_settings(environ={"EVENTYARD_PROFILE_EVENTS_RETENTION_DAYS": "7"}).profile_events_retention_days == 7

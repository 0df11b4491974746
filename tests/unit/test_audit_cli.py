"""The command line's audit entries (``cli:<user>`` from ``cli:<host>``) for what it does on the
data directory itself, and ``eventyard audit list|export`` without a server (they read the
state store directly and record that read)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from eventyard.cli.audit import record_cli
from eventyard.cli.audit_verify import compare, describe
from eventyard.cli.main import app
from eventyard.control import audit
from eventyard.runtime.settings import Settings
from eventyard.state.base import AuditEntry
from eventyard.state.sqlite import SQLiteStateStore
from eventyard.testing.server import free_port

WORKSPACE = """
workspaces:
  - name: default
    sources:
      - name: web
"""


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Options pointing at a data directory and at a port where no server answers."""
    for name in ("EVENTYARD_ADMIN_TOKEN", "EVENTYARD_CONFIG", "EVENTYARD_STATE", "EVENTYARD_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    return ["--data-dir", str(tmp_path / "data"), "--url", f"http://127.0.0.1:{free_port()}"]


def run(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def trail(data_dir: str) -> list[AuditEntry]:
    async def read() -> list[AuditEntry]:
        store = SQLiteStateStore(Path(data_dir) / "state.sqlite3")
        await store.start()
        try:
            return await store.list_audit(limit=1000)
        finally:
            await store.close()

    return asyncio.run(read())


def apply(tmp_path: Path, data_dir: str) -> None:
    file = tmp_path / "workspace.yaml"
    file.write_text(WORKSPACE)
    run("apply", "-f", str(file), "--data-dir", data_dir, "--yes")


def test_apply_and_export_record_who_ran_them(tmp_path: Path, offline: list[str]) -> None:
    data_dir = offline[1]
    apply(tmp_path, data_dir)
    run("export", "--data-dir", data_dir, "--show-secrets")
    applied, exported = trail(data_dir)
    assert (applied.actor, applied.origin) == (audit.cli_actor(), audit.cli_origin())
    assert applied.action == "config.apply" and applied.target.endswith("workspace.yaml")
    assert applied.detail == {"changes": ["+ workspace default", "+ source default/web"]}
    assert (exported.action, exported.detail) == ("config.export", {"secrets": True})


def test_sql_on_the_warehouse_file_is_recorded(tmp_path: Path, offline: list[str]) -> None:
    data_dir = offline[1]
    apply(tmp_path, data_dir)
    db = duckdb.connect(str(Path(data_dir) / "warehouse.duckdb"))
    db.execute("CREATE TABLE users AS SELECT 'ana@example.com' AS email")
    db.close()
    out = run("sql", "SELECT email FROM users", "--json", *offline)
    assert json.loads(out[out.index("{") :])["rows"] == [["ana@example.com"]]
    run("warehouse", "describe", *offline)
    query, describe = trail(data_dir)[1:]
    assert (query.action, query.target, query.detail["sql"]) == ("sql.query", "warehouse", "SELECT email FROM users")
    assert query.actor == audit.cli_actor()
    assert describe.action == "warehouse.describe"


def test_audit_list_and_export_read_the_data_directory_without_a_server(tmp_path: Path, offline: list[str]) -> None:
    data_dir = offline[1]
    apply(tmp_path, data_dir)
    table = run("audit", "list", "--action", "config.", *offline)
    assert "config.apply" in table and audit.cli_actor() in table
    page = json.loads(run("audit", "list", "--json", "--since", "1h", *offline).split("\n", 1)[1])
    assert [e["action"] for e in page["data"]] == ["config.apply", "audit.read", "audit.read"]
    target = tmp_path / "trail.csv"
    run("audit", "export", "--format", "csv", "-o", str(target), *offline)
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert [r["action"] for r in rows] == ["config.apply", "audit.read", "audit.read", "audit.export"]
    assert rows[-1]["actor"] == audit.cli_actor()


def test_audit_list_explains_bad_input(tmp_path: Path, offline: list[str]) -> None:
    apply(tmp_path, offline[1])
    result = CliRunner().invoke(app, ["audit", "list", "--since", "last tuesday", *offline])
    assert result.exit_code == 2
    assert "`since` must be an age (30m, 24h, 7d), unix seconds or an ISO-8601 time" in result.output


def test_record_cli_works_from_async_code_and_refuses_silence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(data_dir=str(tmp_path / "data"))
    store = SQLiteStateStore(settings.state_path())

    async def inside_a_loop() -> None:
        await store.start()
        try:
            record_cli(settings, "config.apply", "f.yaml", {"changes": []})
        finally:
            await store.close()

    asyncio.run(inside_a_loop())
    [entry] = trail(settings.data_dir)
    assert (entry.action, entry.target) == ("config.apply", "f.yaml")

    async def broken(*args: object, **kwargs: object) -> AuditEntry:
        raise OSError("disk full")

    monkeypatch.setattr(SQLiteStateStore, "append_audit", broken)
    result = CliRunner().invoke(app, ["export", "--data-dir", settings.data_dir])
    assert result.exit_code == 1
    assert "could not record `config.export` in the audit trail" in result.output and "disk full" in result.output


def test_verify_finds_entries_changed_or_removed_behind_the_triggers_back(tmp_path: Path, offline: list[str]) -> None:
    data_dir = offline[1]
    apply(tmp_path, data_dir)
    run("export", "--data-dir", data_dir)
    reference = tmp_path / "reference.jsonl"
    run("audit", "export", "-o", str(reference), *offline)
    assert "verified 3 entries (ids 1-3): all present and unchanged" in run("audit", "verify", str(reference), *offline)

    db = sqlite3.connect(Path(data_dir) / "state-audit.sqlite3")  # someone with the file drops the guard
    db.executescript(
        "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;"
        "UPDATE audit_log SET actor = 'cli:nobody' WHERE id = 1; DELETE FROM audit_log WHERE id = 2;"
    )
    db.close()
    result = CliRunner().invoke(app, ["audit", "verify", str(reference), *offline], env={"COLUMNS": "200"})
    assert result.exit_code == 1
    assert "2 of 3 entries (ids 1-3) do not match" in result.output
    assert "#1: changed (actor)" in result.output and "#2: missing from the trail" in result.output


def test_verify_reports_holes_and_refuses_files_that_are_not_exports(tmp_path: Path, offline: list[str]) -> None:
    kept = {1: {"id": 1, "action": "a"}, 4: {"id": 4, "action": "d"}}
    report = compare(kept, iter([{"id": 1, "action": "a"}, {"id": 2, "action": "b"}, {"id": 4, "action": "d"}]))
    assert (report.missing, report.changed, report.holes, report.ok) == ([], {}, [3], False)
    assert "removed entries): 3" in describe(report)[-1]
    bad = tmp_path / "trail.csv"
    bad.write_text("id,at\n1,2026\n")
    result = CliRunner().invoke(app, ["audit", "verify", str(bad), *offline])
    assert result.exit_code == 2
    said = " ".join(result.output.split())
    assert "trail.csv:1: not JSON" in said and "verify reads a jsonl export" in said

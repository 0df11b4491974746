"""`eventyard token create|list|revoke` on a data directory's state store."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eventyard.cli.main import app
from eventyard.state.ids import hash_token
from eventyard.state.sqlite import SQLiteStateStore


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("EVENTYARD_DATA_DIR", "EVENTYARD_CONFIG", "EVENTYARD_STATE", "EVENTYARD_ADMIN_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    directory = tmp_path / "data"

    async def setup() -> None:
        state = SQLiteStateStore(directory / "state.sqlite3")
        await state.start()
        await state.create_workspace("default")
        await state.close()

    asyncio.run(setup())
    return directory


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_create_list_and_revoke(data_dir: Path) -> None:
    code, out = run("token", "create", "ci", "--role", "editor", "--data-dir", str(data_dir))
    assert code == 0, out
    secret = out.strip().splitlines()[-1]
    assert secret.startswith("eyt_")
    token_id = out.split("token ", 1)[1].split(";", 1)[0]

    async def stored() -> tuple[str, str | None] | None:
        state = SQLiteStateStore(data_dir / "state.sqlite3")
        await state.start()
        try:
            found = await state.token_by_hash(hash_token(secret))
            return (found.role, found.workspace_id) if found else None
        finally:
            await state.close()

    role_ws = asyncio.run(stored())
    assert role_ws is not None and role_ws[0] == "editor" and role_ws[1] is not None
    code, out = run("token", "list", "--data-dir", str(data_dir))
    assert code == 0 and token_id in out and "editor" in out and "default" in out and secret not in out
    code, out = run("token", "revoke", token_id, "--data-dir", str(data_dir))
    assert code == 0 and "revoked" in out
    assert asyncio.run(stored()) is None
    code, out = run("token", "revoke", token_id, "--data-dir", str(data_dir))
    assert code == 2 and "no token" in out


def test_bad_input_is_refused_clearly(data_dir: Path) -> None:
    code, out = run("token", "create", "x", "--role", "god", "--data-dir", str(data_dir))
    assert code == 2 and "--role must be one of" in out
    code, out = run("token", "create", "x", "--role", "editor", "--global", "--data-dir", str(data_dir))
    assert code == 2 and "--global is for owner tokens" in out
    code, out = run("token", "create", "x", "--workspace", "nope", "--data-dir", str(data_dir))
    assert code == 2 and "--workspace" in out
    code, out = run("token", "create", "root", "--role", "owner", "--global", "--data-dir", str(data_dir))
    assert code == 0

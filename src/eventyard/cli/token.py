"""`eventyard token create|list|revoke`: control API tokens, straight on the state store.

The same rules as ``/api/v1/tokens`` (docs/control-api.md): roles owner, editor, viewer and
profiles; a token is bound to a workspace unless it is an owner created with ``--global``; only
the SHA-256 is stored and the secret is printed once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import typer
from rich.table import Table

from eventyard.cli.common import ConfigOpt, DataDir, console, fail, settings_or_exit
from eventyard.control.auth import TOKEN_ROLES
from eventyard.errors import EventyardError
from eventyard.runtime.components import make_state
from eventyard.state.base import StateStore
from eventyard.state.ids import hash_token, new_token

app = typer.Typer(help="Control API tokens: create, list, revoke.", no_args_is_help=True)
T = TypeVar("T")


def _run(data_dir: Path | None, config: Path | None, work: Callable[[StateStore], Awaitable[T]]) -> T:
    settings = settings_or_exit(config, data_dir=str(data_dir) if data_dir else None)

    async def go() -> T:
        state = make_state(settings)
        await state.start()
        try:
            return await work(state)
        finally:
            await state.close()

    try:
        return asyncio.run(go())
    except EventyardError as exc:
        fail(str(exc))


@app.command("create")
def create(
    name: str = typer.Argument(..., help="A name that says who or what uses the token."),
    role: str = typer.Option("viewer", help=f"One of {', '.join(TOKEN_ROLES)}."),
    workspace: str | None = typer.Option(None, help="Workspace name or id (default: the only one)."),
    global_: bool = typer.Option(False, "--global", help="An owner token bound to no workspace."),
    data_dir: Path | None = DataDir,
    config: Path | None = ConfigOpt,
) -> None:
    """Create a token and print its secret (shown this once)."""
    if role not in TOKEN_ROLES:
        fail(f"--role must be one of {', '.join(TOKEN_ROLES)}, not {role!r}")
    if global_ and (role != "owner" or workspace):
        fail("--global is for owner tokens and cannot be combined with --workspace")

    async def work(state: StateStore) -> tuple[str, str]:
        workspace_id = None
        if not global_:
            spaces = await state.list_workspaces()
            chosen = [w for w in spaces if workspace in (w.id, w.name)] if workspace else spaces
            if len(chosen) != 1:
                names = ", ".join(w.name for w in spaces) or "none"
                fail(f"name the workspace with --workspace (workspaces: {names})")
            workspace_id = chosen[0].id
        secret = new_token()
        token = await state.add_token(name, role, hash_token(secret), workspace_id)
        return token.id, secret

    token_id, secret = _run(data_dir, config, work)
    console.print(f"created {role} token {token_id}; its secret (shown once):")
    console.print(secret, highlight=False, soft_wrap=True)


@app.command("list")
def list_(data_dir: Path | None = DataDir, config: Path | None = ConfigOpt) -> None:
    """List tokens (never their secrets)."""

    async def work(state: StateStore) -> list[tuple[str, str, str, str, str]]:
        names = {w.id: w.name for w in await state.list_workspaces()}
        return [
            (
                t.id,
                t.name,
                t.role,
                names.get(t.workspace_id, t.workspace_id) if t.workspace_id else "(all)",
                datetime.fromtimestamp(t.created_at, UTC).strftime("%Y-%m-%d %H:%M"),
            )
            for t in await state.list_tokens()
        ]

    table = Table("id", "name", "role", "workspace", "created (UTC)")
    for row in _run(data_dir, config, work):
        table.add_row(*row)
    console.print(table)


@app.command("revoke")
def revoke(
    token_id: str = typer.Argument(..., help="The token's id (see `eventyard token list`)."),
    data_dir: Path | None = DataDir,
    config: Path | None = ConfigOpt,
) -> None:
    """Revoke a token; a running server stops accepting it within five seconds."""
    if not _run(data_dir, config, lambda state: state.delete_token(token_id)):
        fail(f"no token with id {token_id!r}")
    console.print(f"revoked {token_id}")

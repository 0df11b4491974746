"""First start: a default workspace, a source and an admin token, so the server is usable at once."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from eventyard.state.base import Source, StateStore, Workspace
from eventyard.state.ids import hash_token, new_token

ADMIN_TOKEN_FILE = "admin_token"
WAREHOUSE_NAME = "warehouse"
WAREHOUSE_FILE = "warehouse.duckdb"
#: Schema of the default source in the embedded warehouse.
WAREHOUSE_SCHEMA = "default_source"


@dataclass
class Bootstrap:
    created: bool
    workspace: Workspace
    sources: list[Source]
    #: The admin token in clear, only when it was generated just now.
    new_admin_token: str | None
    token_file: Path


async def ensure_defaults(
    state: StateStore, data_dir: Path, preset_token: str | None, warehouse: bool = True
) -> Bootstrap:
    """``warehouse=False`` (the scale-out deployment) creates no embedded DuckDB warehouse: a
    DuckDB file belongs to one machine, while route processes run on several."""
    created = False
    workspaces = await state.list_workspaces()
    if not workspaces:
        ws = await state.create_workspace("default")
        source = await state.create_source(ws.id, "default")
        if warehouse:
            # The embedded warehouse: every event of every source, queryable at once. The
            # default source's schema is named explicitly (``default`` is an SQL keyword);
            # sources created later join it on their own (``auto_connect``), each in the schema
            # of its name.
            duckdb = await state.create_destination(
                ws.id,
                WAREHOUSE_NAME,
                "duckdb",
                settings={
                    "path": str(data_dir / WAREHOUSE_FILE),
                    "schemas": {source.id: WAREHOUSE_SCHEMA},
                    "auto_connect": True,
                },
            )
            await state.set_connection(source.id, duckdb.id)
        workspaces = [ws]
        created = True
    token_file = data_dir / ADMIN_TOKEN_FILE
    new_admin: str | None = None
    if preset_token:
        if await state.token_by_hash(hash_token(preset_token)) is None:
            await state.add_token("admin (EVENTYARD_ADMIN_TOKEN)", "owner", hash_token(preset_token))
    elif not any(t.role == "owner" for t in await state.list_tokens()):
        new_admin = new_token()
        await state.add_token("admin (first start)", "owner", hash_token(new_admin))
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(new_admin + "\n")
    sources = await state.list_sources(workspaces[0].id)
    return Bootstrap(created, workspaces[0], sources, new_admin, token_file)


def read_token_file(data_dir: Path) -> str | None:
    try:
        return (data_dir / ADMIN_TOKEN_FILE).read_text().strip() or None
    except OSError:
        return None

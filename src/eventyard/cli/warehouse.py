"""`eventyard sql` and `eventyard warehouse describe`: read the embedded warehouse.

When a server answers at ``--url``, both go through its admin API (``POST /api/v1/sql``,
``GET /api/v1/warehouse/describe``): the server holds the DuckDB file open for writing and
DuckDB lets no other process open it meanwhile. When no server answers, the DuckDB file of the
data directory is opened read-only, directly, with the same rules (one read statement, no file
access). The file is the ``duckdb`` destination's of the state store (``--destination`` picks one
of several), else ``DATA_DIR/warehouse.duckdb``.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from rich.table import Table

from eventyard.cli.api import call
from eventyard.cli.audit import record_cli
from eventyard.cli.common import admin_token, console, err_console, fail, settings_or_exit
from eventyard.warehouse import ReadOnlyViolation

#: Longest wait for a server to answer before the file is read directly.
PROBE_SECONDS = 2.0


def sql(
    url: str,
    token: str | None,
    data_dir: Path | None,
    query: str,
    destination: str | None,
    max_rows: int,
    as_json: bool,
) -> None:
    if server_answers(url):
        body: dict[str, Any] = {"sql": query, "maxRows": max_rows}
        if destination:
            body["destination"] = destination
        data = call(url, admin_token(token, data_dir), "POST", "/api/v1/sql", body)
    else:
        record_cli(data_dir, "sql.query", destination or "warehouse", {"sql": query[:1000], "maxRows": max_rows})
        data = _local(url, data_dir, destination, lambda store: _result(store.query(query, max_rows)))
    if as_json:
        print(json.dumps(data, indent=2))
        return
    table = Table()
    for column in data["columns"]:
        table.add_column(column)
    for row in data["rows"]:
        table.add_row(*("NULL" if v is None else str(v) for v in row))
    console.print(table)
    more = " (truncated: more rows exist; add a LIMIT or raise --max-rows)" if data["truncated"] else ""
    console.print(f"{len(data['rows']):,} row(s){more}")


def describe(url: str, token: str | None, data_dir: Path | None, destination: str | None, as_json: bool) -> None:
    if server_answers(url):
        data = call(
            url, admin_token(token, data_dir), "GET", "/api/v1/warehouse/describe", params={"destination": destination}
        )
    else:
        record_cli(data_dir, "warehouse.describe", destination or "warehouse")
        data = _local(url, data_dir, destination, lambda store: {"data": [_table(t) for t in store.describe()]})
    if as_json:
        print(json.dumps(data, indent=2))
        return
    table = Table(title="warehouse tables")
    for column in ("schema", "table", "rows (est.)", "columns"):
        table.add_column(column)
    for t in data["data"]:
        cols = ", ".join(f"{name} {kind.lower()}" for name, kind in t["columns"].items())
        table.add_row(t["schema"], t["table"], f"{t['rows']:,}" if t["rows"] is not None else "-", cols)
    console.print(table)


def server_answers(url: str) -> bool:
    """Whether anything answers HTTP at ``url`` (any status: it is a server, maybe not ours)."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=PROBE_SECONDS):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _result(result: Any) -> dict[str, Any]:
    return {"columns": result.columns, "rows": result.rows, "truncated": result.truncated}


def _table(t: Any) -> dict[str, Any]:
    return {"schema": t.schema, "table": t.table, "rows": t.rows, "columns": t.columns}


def _local(url: str, data_dir: Path | None, destination: str | None, read: Any) -> Any:
    """``read(store)`` on the warehouse file opened read-only."""
    from eventyard.destinations.duckdb.store import DuckDBStore

    path = warehouse_file(data_dir, destination)
    err_console.print(
        f"no server answers at {url}: reading {path} directly (read-only)", highlight=False, soft_wrap=True
    )
    try:
        store = DuckDBStore(path, read_only=True)
    except Exception as exc:
        if "lock" in str(exc).lower():
            fail(
                f"{path} is open in a running eventyard server (DuckDB lets one process write it): "
                f"point --url at that server instead ({exc})"
            )
        fail(f"cannot open the warehouse {path}: {type(exc).__name__}: {exc}")
    try:
        return read(store)
    except ReadOnlyViolation as exc:
        fail(f"400: {exc}")
    except Exception as exc:  # the database's own message says what is wrong with the query
        fail(f"{type(exc).__name__}: {exc}")
    finally:
        store.close()


def warehouse_file(data_dir: Path | None, destination: str | None) -> Path:
    """The DuckDB file of a ``duckdb`` destination of the data directory's state store."""
    settings = settings_or_exit(None, data_dir=str(data_dir) if data_dir else None)
    root = settings.data_path
    found = asyncio.run(_duckdb_destinations(settings)) if settings.state_path().exists() else []
    if destination:
        for dest_id, name, path in found:
            if destination in (dest_id, name):
                return path
        fail(f"no duckdb destination named {destination!r} in {root} (found: {sorted(n for _, n, _ in found)})")
    if len(found) == 1:
        return found[0][2]
    if len(found) > 1:
        fail(f"several warehouses in {root}; choose one with --destination: {sorted(n for _, n, _ in found)}")
    default = root / "warehouse.duckdb"
    if not default.exists():
        fail(f"no warehouse in {root}: no duckdb destination and no {default.name} (is --data-dir right?)")
    return default


async def _duckdb_destinations(settings: Any) -> list[tuple[str, str, Path]]:
    from eventyard.runtime.components import make_state

    state = make_state(settings)
    await state.start()
    try:
        destinations = await state.list_destinations()
    finally:
        await state.close()
    out = []
    for d in destinations:
        if d.type != "duckdb":
            continue
        configured = str(d.settings.get("path") or "")
        own = settings.data_path / "destinations" / d.id / "warehouse.duckdb"
        out.append((d.id, d.name, Path(configured).expanduser() if configured else own))
    return out

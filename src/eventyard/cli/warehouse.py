"""`eventyard sql` and `eventyard warehouse describe`: the embedded warehouse through the admin API."""

from __future__ import annotations

import json
from typing import Any

from rich.table import Table

from eventyard.cli.api import call
from eventyard.cli.common import console


def sql(url: str, token: str, query: str, destination: str | None, max_rows: int, as_json: bool) -> None:
    body: dict[str, Any] = {"sql": query, "maxRows": max_rows}
    if destination:
        body["destination"] = destination
    data = call(url, token, "POST", "/api/v1/sql", body)
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


def describe(url: str, token: str, destination: str | None, as_json: bool) -> None:
    data = call(url, token, "GET", "/api/v1/warehouse/describe", params={"destination": destination})
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

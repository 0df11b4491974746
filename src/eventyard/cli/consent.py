"""`eventyard consent ...`: consent categories and the destinations that need them.

Every subcommand talks to a running server's admin API (``/api/v1/consent/categories``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import typer
from rich.table import Table
from rich.text import Text

from eventyard.cli.api import call
from eventyard.cli.common import DataDir, admin_token, console, fail

app = typer.Typer(help="Consent categories: list, add, change, remove; strategies.", no_args_is_help=True)

Url = typer.Option("http://127.0.0.1:8080", help="Base URL of the server.")
Token = typer.Option(None, help="Admin token (or EVENTYARD_ADMIN_TOKEN, or the data directory's token file).")
Workspace = typer.Option(None, help="Workspace id or name (needed only when there are several).")
Json = typer.Option(False, "--json", help="Print the answer as JSON.")
PATH = "/api/v1/consent/categories"


def _print(data: dict[str, Any]) -> None:
    table = Table(title=f"consent categories of {data['workspace']} (version {data['version']})")
    for col in ("id", "name", "destinations"):
        table.add_column(col)
    for cat in data["categories"]:
        table.add_row(Text(cat["id"]), Text(cat["name"]), Text(", ".join(cat["destinations"]) or "-"))
    console.print(table)
    for dest, strategy in sorted(data.get("strategies", {}).items()):
        console.print(Text(f"custom-provider strategy of {dest}: {strategy}"))
    if not data["categories"]:
        console.print("no categories: events flow to every destination whatever their consent object says")


def _show(data: Any, json_: bool) -> None:
    if json_:
        print(json.dumps(data["data"], indent=2, ensure_ascii=False))
    else:
        _print(data["data"])


@app.command("list")
def list_(
    workspace: str | None = Workspace,
    url: str = Url,
    token: str | None = Token,
    data_dir: Path | None = DataDir,
    json_: bool = Json,
) -> None:
    """The workspace's consent categories and the destinations mapped to each."""
    _show(call(url, admin_token(token, data_dir), "GET", PATH, params={"workspace": workspace}), json_)


@app.command()
def add(
    category: str = typer.Argument(..., help="Category id as events send it (case-sensitive)."),
    name: str | None = typer.Option(None, help="Display name (default: the id)."),
    destination: list[str] = typer.Option([], "--destination", "-d", help="Destination name or id (repeatable)."),
    workspace: str | None = Workspace,
    url: str = Url,
    token: str | None = Token,
    data_dir: Path | None = DataDir,
    json_: bool = Json,
) -> None:
    """Add a category, or replace one with the same id."""
    body: dict[str, Any] = {"name": name or category, "destinations": destination}
    if workspace:
        body["workspace"] = workspace
    data = call(url, admin_token(token, data_dir), "PUT", f"{PATH}/{quote(category, safe='')}", body)
    _show(data, json_)


@app.command()
def remove(
    category: str = typer.Argument(..., help="Category id."),
    workspace: str | None = Workspace,
    url: str = Url,
    token: str | None = Token,
    data_dir: Path | None = DataDir,
) -> None:
    """Remove a category (its destinations no longer need that consent)."""
    call(
        url,
        admin_token(token, data_dir),
        "DELETE",
        f"{PATH}/{quote(category, safe='')}",
        params={"workspace": workspace},
    )
    console.print(Text(f"removed consent category {category}"))


@app.command()
def strategy(
    destination: str = typer.Argument(..., help="Destination name or id."),
    value: str = typer.Argument(..., help="and | or | default (remove the setting)."),
    workspace: str | None = Workspace,
    url: str = Url,
    token: str | None = Token,
    data_dir: Path | None = DataDir,
    json_: bool = Json,
) -> None:
    """How a RudderStack `custom`-provider event's denied ids block this destination."""
    if value not in ("and", "or", "default"):
        fail("the strategy must be and, or or default")
    secret = admin_token(token, data_dir)
    current = call(url, secret, "GET", PATH, params={"workspace": workspace})["data"]
    strategies = dict(current.get("strategies", {}))
    strategies.pop(destination, None)
    if value != "default":
        strategies[destination] = value
    body = {"categories": current["categories"], "strategies": strategies, "workspace": current["workspace"]}
    _show(call(url, secret, "PUT", PATH, body), json_)

"""`eventyard profile ...`: look at profiles, see why they are what they are, and repair them.

All subcommands talk to a running server's admin API (``/api/v1/profiles``,
``/api/v1/identity``) with the admin token.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import typer
import yaml
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from eventyard.cli.api import call
from eventyard.cli.common import DataDir, admin_token, console, fail

app = typer.Typer(
    help="Profiles: show, explain, remove an identifier, split a merge, rules, tokens.", no_args_is_help=True
)

Url = typer.Option("http://127.0.0.1:8080", help="Base URL of the server.")
Token = typer.Option(None, help="Admin token (or EVENTYARD_ADMIN_TOKEN, or the data directory's token file).")
Workspace = typer.Option(None, help="Workspace id or name (needed only when there are several).")
Json = typer.Option(False, "--json", help="Print the answer as JSON.")
Ref = typer.Argument(..., help="type:value (email:ana@example.com, user_id:42, group_id:acme) or a profile id.")


def say(text: str) -> None:
    """Print data as it is: no markup, no emoji codes (``:phone:`` is an identifier here)."""
    console.print(text, markup=False, emoji=False, highlight=False)


def heading(text: str) -> None:
    console.print(f"[bold]{escape(text)}[/]", emoji=False, highlight=False)


def _cells(*values: str) -> list[Text]:
    return [Text(v) for v in values]


def _path(ref: str, suffix: str = "") -> str:
    return "/api/v1/profiles/" + quote(ref, safe=":@") + suffix


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def _short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


@app.command()
def show(
    ref: str = Ref,
    workspace: str | None = Workspace,
    events: int = typer.Option(10, help="How many recent events to show."),
    url: str = Url,
    token: str | None = Token,
    data_dir: Path | None = DataDir,
    json_: bool = Json,
) -> None:
    """A profile: traits, identifiers, metadata, linked accounts and recent events."""
    data = call(url, admin_token(token, data_dir), "GET", _path(ref), params={"workspace": workspace, "events": events})
    if json_:
        _print_json(data)
        return
    meta = data["metadata"]
    heading(f"{data['profile_id']} ({data['collection']}, workspace {data['workspace']})")
    say(
        f"first seen {meta['first_seen_at']}  last seen {meta['last_seen_at']}  sources {', '.join(meta['source_ids'])}"
        f"  merges {data['merges']}"
    )
    table = Table(title="traits")
    table.add_column("trait")
    table.add_column("value")
    for name, value in data["traits"].items():
        table.add_row(*_cells(name, _short(value)))
    console.print(table)
    ids = Table(title="identifiers")
    for col in ("type", "value", "source", "added"):
        ids.add_column(col)
    for i in data["identifiers"]:
        ids.add_row(*_cells(i["type"], i["id"], i["source_id"], i["created_at"]))
    console.print(ids)
    for link in data["links"]:
        names = ", ".join(f"{e['type']}:{e['id']}" for e in link["external_ids"])
        say(f"linked {link['to_collection']}: {link['profile_id']} ({names})")
    if data["events"]:
        ev = Table(title="recent events")
        for col in ("timestamp", "type", "name", "messageId", "source"):
            ev.add_column(col)
        for e in data["events"]:
            name = e.get("event") or e.get("name") or ""
            ev.add_row(*_cells(e["timestamp"], e["type"], name, e["message_id"], e["source_id"]))
        console.print(ev)


@app.command()
def explain(
    ref: str = Ref,
    workspace: str | None = Workspace,
    url: str = Url,
    token: str | None = Token,
    data_dir: Path | None = DataDir,
    json_: bool = Json,
) -> None:
    """Why a profile holds each identifier, the merges that made it and what the rules refused."""
    data = call(url, admin_token(token, data_dir), "GET", _path(ref, "/explain"), params={"workspace": workspace})
    if json_:
        _print_json(data)
        return
    heading(f"{data['profile_id']} ({data['collection']}) created {data['created_at']}")
    if len(data["members"]) > 1:
        say("merged into it: " + ", ".join(data["members"][1:]))
    heading("identifiers (why each is here)")
    for i in data["identifiers"]:
        how = ""
        if i["first_profile"] != data["profile_id"]:
            how = f"; came with merge #{i.get('via_merge')} from {i['first_profile']}"
        say(
            f"  {i['identifier']}: added by message {i['message_id']} (source {i['source_id']}, "
            f"event time {i['added_at']}){how}",
        )
    if data["merges"]:
        heading("merges")
        for m in data["merges"]:
            state = f"split at {m['undone_at']}" if m["undone_at"] else "in effect"
            say(
                f"  #{m['id']} {m['at']}: {m['from']} -> {m['into']} by {m['rule']}, message {m['message_id']} "
                f"(source {m['source_id']}): {m['detail']} [{state}]",
            )
    if data["refused"]:
        heading("identifiers not added (rules) or removed (operators)")
        for r in data["refused"]:
            say(
                f"  {r['identifier']}: {r['rule']}, {r['count']}x, last message {r['last_message_id'] or '-'} "
                f"at {r['last_at']}: {r['detail']}",
            )


def _print_parts(data: dict[str, Any]) -> None:
    for part in data["profiles"]:
        say(f"{part['status']:>8}  {part['profile_id']}  {part['events']} events  {', '.join(part['identifiers'])}")
    if data.get("detached_events"):
        say(f"{data['detached_events']} events left the profile history (their only identifier was blocked)")


@app.command()
def remove(
    ref: str = Ref,
    identifier: str = typer.Argument(..., help="The identifier to remove, type:value."),
    block: bool = typer.Option(False, "--block", help="Also add its value to the workspace's blocked values."),
    workspace: str | None = Workspace,
    url: str = Url,
    token: str | None = Token,
    data_dir: Path | None = DataDir,
    json_: bool = Json,
) -> None:
    """Remove an identifier from a profile; the profile is recomputed from its events."""
    body = {"identifier": identifier, "block": block, "workspace": workspace}
    data = call(url, admin_token(token, data_dir), "POST", _path(ref, "/remove-identifier"), body=body)
    if json_:
        _print_json(data)
        return
    _print_parts(data)


@app.command()
def split(
    ref: str = Ref,
    merge: int = typer.Argument(..., help="The merge to undo (its # in `eventyard profile explain`)."),
    workspace: str | None = Workspace,
    url: str = Url,
    token: str | None = Token,
    data_dir: Path | None = DataDir,
    json_: bool = Json,
) -> None:
    """Undo a merge; both sides are recomputed from their events."""
    body = {"merge": merge, "workspace": workspace}
    data = call(url, admin_token(token, data_dir), "POST", _path(ref, "/split"), body=body)
    if json_:
        _print_json(data)
        return
    _print_parts(data)


@app.command()
def rules(
    file: Path | None = typer.Option(None, "-f", "--file", help="Set the rules from this YAML or JSON file."),
    workspace: str | None = Workspace,
    url: str = Url,
    token: str | None = Token,
    data_dir: Path | None = DataDir,
) -> None:
    """Print the identity resolution rules as YAML, or set them from a file (missing keys: defaults)."""
    secret = admin_token(token, data_dir)
    if file is None:
        data = call(url, secret, "GET", "/api/v1/identity/rules", params={"workspace": workspace})
    else:
        try:
            parsed = yaml.safe_load(file.read_text())
        except (OSError, yaml.YAMLError) as exc:
            fail(f"cannot read {file}: {exc}")
        path = "/api/v1/identity/rules" + (f"?workspace={quote(workspace)}" if workspace else "")
        data = call(url, secret, "PUT", path, body=parsed or {})
    print(yaml.safe_dump(data["rules"], sort_keys=False), end="")


@app.command()
def status(
    workspace: str | None = Workspace,
    url: str = Url,
    token: str | None = Token,
    data_dir: Path | None = DataDir,
) -> None:
    """How many profiles, identifiers, merges and stored events there are."""
    data = call(url, admin_token(token, data_dir), "GET", "/api/v1/identity/status", params={"workspace": workspace})
    say(
        f"workspace {data['workspace']} ({data['store']}): {data['profiles']:,} profiles, "
        f"{data['identifiers']:,} identifiers, {data['merges']:,} merges, {data['events']:,} stored events "
        f"(kept {data['history_retention_days']:g} days)"
    )


@app.command("token")
def token_cmd(
    name: str = typer.Option("profile api", help="A name to recognise the token by."),
    workspace: str | None = Workspace,
    url: str = Url,
    token: str | None = Token,
    data_dir: Path | None = DataDir,
) -> None:
    """Create a Profile API access token for one workspace (printed once)."""
    data = call(
        url, admin_token(token, data_dir), "POST", "/api/v1/profile-tokens", body={"name": name, "workspace": workspace}
    )
    say(f"Profile API token for workspace {data['workspace']} (shown once):")
    print(data["token"])

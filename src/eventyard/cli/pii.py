"""`eventyard pii ...`: PII rules, the PII report, and trying the classifiers on a value.

Every subcommand talks to a running server's admin API (``/api/v1/pii/...``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.table import Table
from rich.text import Text

from eventyard.cli.api import call
from eventyard.cli.common import DataDir, admin_token, console, fail

app = typer.Typer(help="PII controls: rules, the report of fields holding PII, classify a value.", no_args_is_help=True)

Url = typer.Option("http://127.0.0.1:8080", help="Base URL of the server.")
Token = typer.Option(None, help="Admin token (or EVENTYARD_ADMIN_TOKEN, or the data directory's token file).")
Workspace = typer.Option(None, help="Workspace id or name (needed only when there are several).")
Json = typer.Option(False, "--json", help="Print the answer as JSON.")


def _rules_table(data: dict[str, Any]) -> None:
    table = Table(title=f"PII rules of {data['workspace']} (version {data['version']}, detect {data['detect']})")
    for col in ("#", "name", "path", "kind", "action", "per destination"):
        table.add_column(col)
    for i, r in enumerate(data["rules"], 1):
        overrides = ", ".join(f"{d}: {a}" for d, a in r.get("destinations", {}).items()) or "-"
        table.add_row(
            str(i), Text(r.get("name", "")), Text(r.get("path", "-")), r.get("kind", "-"), r["action"], Text(overrides)
        )
    console.print(table)


def _dump(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


@app.command()
def rules(
    workspace: str | None = Workspace,
    url: str = Url,
    token: str | None = Token,
    data_dir: Path | None = DataDir,
    json_: bool = Json,
) -> None:
    """The workspace's PII rules."""
    data = call(url, admin_token(token, data_dir), "GET", "/api/v1/pii/rules", params={"workspace": workspace})["data"]
    _dump(data) if json_ else _rules_table(data)


@app.command("set")
def set_(
    file: Path = typer.Option(..., "-f", "--file", help="YAML or JSON file: {detect, rules: [...]}."),
    workspace: str | None = Workspace,
    url: str = Url,
    token: str | None = Token,
    data_dir: Path | None = DataDir,
) -> None:
    """Replace the workspace's PII rules with those of a file."""
    try:
        body = yaml.safe_load(file.read_text())
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}")
    except yaml.YAMLError as exc:
        fail(f"{file} is not valid YAML or JSON: {exc}")
    if not isinstance(body, dict):
        fail(f"{file} must hold a mapping with `rules` (and optionally `detect`)")
    if workspace:
        body["workspace"] = workspace
    data = call(url, admin_token(token, data_dir), "PUT", "/api/v1/pii/rules", body)["data"]
    _rules_table(data)


@app.command()
def add(
    action: str = typer.Argument(..., help="allow | hash | mask | drop | block"),
    path: str | None = typer.Option(None, help="Field path: properties.email, traits.*.phone, context.ip."),
    kind: str | None = typer.Option(None, help="email | phone | card | national_id | ip"),
    name: str | None = typer.Option(None, help="Rule name (for the report)."),
    override: list[str] = typer.Option([], "--override", "-o", help="DESTINATION=ACTION (repeatable)."),
    workspace: str | None = Workspace,
    url: str = Url,
    token: str | None = Token,
    data_dir: Path | None = DataDir,
) -> None:
    """Append one rule to the workspace's PII rules."""
    rule: dict[str, Any] = {"action": action}
    for key, value in (("path", path), ("kind", kind), ("name", name)):
        if value:
            rule[key] = value
    overrides = {}
    for item in override:
        dest, sep, act = item.partition("=")
        if not sep or not dest or not act:
            fail(f"--override {item!r} must be DESTINATION=ACTION")
        overrides[dest] = act
    if overrides:
        rule["destinations"] = overrides
    secret = admin_token(token, data_dir)
    current = call(url, secret, "GET", "/api/v1/pii/rules", params={"workspace": workspace})["data"]
    detect = current["detect"] if current["version"] else True
    body = {"detect": detect, "rules": [*current["rules"], rule], "workspace": current["workspace"]}
    _rules_table(call(url, secret, "PUT", "/api/v1/pii/rules", body)["data"])


@app.command()
def off(
    workspace: str | None = Workspace,
    url: str = Url,
    token: str | None = Token,
    data_dir: Path | None = DataDir,
) -> None:
    """Remove every PII rule of the workspace (PII controls off)."""
    data = call(url, admin_token(token, data_dir), "DELETE", "/api/v1/pii/rules", params={"workspace": workspace})
    console.print("PII rules removed" if data["data"]["deleted"] else "there were no PII rules")


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


@app.command()
def report(
    source: str | None = typer.Option(None, help="Only this source (id or name)."),
    reset: bool = typer.Option(False, "--reset", help="Forget the counts instead of showing them."),
    workspace: str | None = Workspace,
    url: str = Url,
    token: str | None = Token,
    data_dir: Path | None = DataDir,
    json_: bool = Json,
) -> None:
    """Which fields carried which kind of PII, how often, and what the rules do with them."""
    params = {"workspace": workspace, "source": source}
    secret = admin_token(token, data_dir)
    if reset:
        data = call(url, secret, "DELETE", "/api/v1/pii/report", params=params)["data"]
        console.print(f"forgot {data['cleared']} row(s) of PII findings")
        return
    rows = call(url, secret, "GET", "/api/v1/pii/report", params=params)["data"]
    if json_:
        _dump(rows)
        return
    if not rows:
        console.print("no PII found yet (PII controls need rules or detect: true; see `eventyard pii rules`)")
        return
    table = Table(title="fields holding PII")
    for col in ("source", "field", "kind", "events", "first seen", "last seen", "action"):
        table.add_column(col, justify="right" if col == "events" else "left", no_wrap=col in ("field", "kind"))
    for r in rows:
        action = r["action"]
        if r["destinations"]:
            action += " (" + ", ".join(f"{d}: {a}" for d, a in r["destinations"].items()) + ")"
        table.add_row(
            Text(r["source"]),
            Text(r["path"]),
            r["kind"],
            f"{r['count']:,}",
            _when(r["firstSeen"]),
            _when(r["lastSeen"]),
            Text(action),
        )
    console.print(table)


@app.command()
def classify(
    value: str = typer.Argument(..., help="A value to try."),
    kind: str | None = typer.Option(None, help="Normalize as this kind instead of the detected one."),
    url: str = Url,
    token: str | None = Token,
    data_dir: Path | None = DataDir,
) -> None:
    """What kind of PII a value is, and its normalized, hashed and masked forms."""
    body: dict[str, Any] = {"value": value}
    if kind:
        body["kind"] = kind
    data = call(url, admin_token(token, data_dir), "POST", "/api/v1/pii/classify", body)["data"]
    for key in ("kind", "normalized", "hash", "mask"):
        console.print(Text(f"{key:>10}: {data[key]}"))

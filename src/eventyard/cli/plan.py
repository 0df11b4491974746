"""`eventyard plan ...`: tracking plans: import, export, show, history, diff, attach, violations,
infer a draft from traffic, and generate a typed Python tracking module.

All subcommands but ``typegen`` on a file talk to a running server's admin API
(``/api/v1/tracking-plans``, ``/api/v1/sources/{source}/tracking-plan``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import typer
from rich.markup import escape
from rich.table import Table

from eventyard.cli.api import call
from eventyard.cli.common import DataDir, admin_token, console, fail
from eventyard.errors import ConfigError
from eventyard.quality.plan_format import dumps, loads, parse_plan
from eventyard.quality.plan_typegen import generate

app = typer.Typer(
    help="Tracking plans: import, export, diff, attach to sources, violations, infer, typegen.", no_args_is_help=True
)

Url = typer.Option("http://127.0.0.1:8080", help="Base URL of the server.")
Token = typer.Option(None, help="Admin token (or EVENTYARD_ADMIN_TOKEN, or the data directory's token file).")
Workspace = typer.Option(None, help="Workspace id or name (needed only when there are several).")
Json = typer.Option(False, "--json", help="Print the answer as JSON.")
PlanName = typer.Argument(..., help="The tracking plan's name.")


def _plan_path(name: str, suffix: str = "") -> str:
    return "/api/v1/tracking-plans/" + quote(name, safe="") + suffix


def _source_path(source: str, suffix: str) -> str:
    return "/api/v1/sources/" + quote(source, safe="") + suffix


def _say(text: str) -> None:
    console.print(text, markup=False, emoji=False, highlight=False)


def _write(text: str, output: Path | None) -> None:
    if output is None:
        print(text, end="" if text.endswith("\n") else "\n")
    else:
        output.write_text(text)
        console.print(f"wrote {escape(str(output))}", highlight=False)


@app.command("list")
def list_plans(
    url: str = Url,
    token: str | None = Token,
    data_dir: Path | None = DataDir,
    workspace: str | None = Workspace,
    json_: bool = Json,
) -> None:
    """The workspace's tracking plans with their latest version and sources."""
    data = call(url, admin_token(token, data_dir), "GET", "/api/v1/tracking-plans", params={"workspace": workspace})
    if json_:
        print(json.dumps(data, indent=2))
        return
    table = Table("plan", "version", "rules", "sources", "description")
    for p in data["data"]:
        table.add_row(p["name"], str(p["version"]), str(p["rules"]), ", ".join(p["sources"]), p["description"])
    console.print(table)


@app.command("import")
def import_(
    file: Path = typer.Argument(..., help="Plan file: JSON or YAML (eventyard's format or Segment's export)."),
    name: str | None = typer.Option(None, help="Store under this name (default: the file's `name`)."),
    url: str = Url,
    token: str | None = Token,
    data_dir: Path | None = DataDir,
    workspace: str | None = Workspace,
) -> None:
    """Create a plan, or store a file as the plan's next version (shows what changed)."""
    try:
        plan = loads(file.read_text(), name, str(file))
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}")
    except ConfigError as exc:
        fail(f"{file}: {exc}")
    out = call(
        url, admin_token(token, data_dir), "PUT", _plan_path(plan.name), plan.to_json(), {"workspace": workspace}
    )
    if not out["changed"]:
        _say(f"{plan.name}: no change (version {out['version']})")
        return
    _say(f"{plan.name}: version {out['version']}")
    for line in out["changes"]:
        _say(f"  {line}")


@app.command("export")
def export(
    plan: str = PlanName,
    version: int | None = typer.Option(None, help="This version (default: the latest)."),
    format_: str = typer.Option("yaml", "--format", help="yaml or json."),
    output: Path | None = typer.Option(None, "-o", "--output", help="Write to this file instead of stdout."),
    url: str = Url,
    token: str | None = Token,
    data_dir: Path | None = DataDir,
    workspace: str | None = Workspace,
) -> None:
    """Print a plan as YAML or JSON (imports back unchanged)."""
    if format_ not in ("yaml", "json"):
        fail("--format must be yaml or json")
    data = call(
        url, admin_token(token, data_dir), "GET", _plan_path(plan), params={"version": version, "workspace": workspace}
    )
    _write(dumps(parse_plan(data), format_), output)


@app.command()
def show(
    plan: str = PlanName,
    version: int | None = typer.Option(None, help="This version (default: the latest)."),
    url: str = Url,
    token: str | None = Token,
    data_dir: Path | None = DataDir,
    workspace: str | None = Workspace,
) -> None:
    """A plan's rules: each event with its planned and required fields."""
    data = call(
        url, admin_token(token, data_dir), "GET", _plan_path(plan), params={"version": version, "workspace": workspace}
    )
    console.print(
        f"[bold]{escape(data['name'])}[/] version {data['version']}  {escape(data.get('description', ''))}",
        highlight=False,
    )
    table = Table("type", "key", "v", "fields (* required)")
    for rule in data["rules"]:
        fields = []
        for section, spec in (rule["jsonSchema"].get("properties") or {}).items():
            required = set(spec.get("required") or []) if isinstance(spec, dict) else set()
            for field in (spec.get("properties") or {}) if isinstance(spec, dict) else {}:
                fields.append(f"{section}.{field}{'*' if field in required else ''}")
        table.add_row(rule["type"], rule["key"], str(rule["version"]), escape(", ".join(fields)))
    console.print(table)


@app.command()
def history(
    plan: str = PlanName,
    url: str = Url,
    token: str | None = Token,
    data_dir: Path | None = DataDir,
    workspace: str | None = Workspace,
) -> None:
    """Every version of a plan: when, by whom, how many rules."""
    data = call(url, admin_token(token, data_dir), "GET", _plan_path(plan, "/history"), params={"workspace": workspace})
    table = Table("version", "created", "by", "rules", "")
    from datetime import UTC, datetime

    for v in data["data"]:
        when = datetime.fromtimestamp(v["createdAt"], UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(str(v["version"]), when, v["actor"] or "-", str(v["rules"]), "deleted" if v["deleted"] else "")
    console.print(table)


@app.command()
def diff(
    plan: str = PlanName,
    from_: int | None = typer.Option(None, "--from", help="Older version (default: the one before --to)."),
    to: int | None = typer.Option(None, "--to", help="Newer version (default: the latest)."),
    url: str = Url,
    token: str | None = Token,
    data_dir: Path | None = DataDir,
    workspace: str | None = Workspace,
) -> None:
    """What changed between two versions: rules and fields added, removed, retyped."""
    data = call(
        url,
        admin_token(token, data_dir),
        "GET",
        _plan_path(plan, "/diff"),
        params={"from": from_, "to": to, "workspace": workspace},
    )
    _say(f"{plan}: version {data['from'] or '(none)'} -> {data['to']}")
    for change in data["changes"]:
        _say(f"  {change['text']}")
    if not data["changes"]:
        _say("  no differences")


@app.command()
def delete(
    plan: str = PlanName,
    url: str = Url,
    token: str | None = Token,
    data_dir: Path | None = DataDir,
    workspace: str | None = Workspace,
) -> None:
    """Delete a plan (its history stays); refused while a source uses it."""
    call(url, admin_token(token, data_dir), "DELETE", _plan_path(plan), params={"workspace": workspace})
    _say(f"deleted {plan}")


@app.command()
def attach(
    plan: str = PlanName,
    source: str = typer.Option(..., help="Source id or name."),
    track_unplanned_events: str = typer.Option("allow", help="allow or block."),
    track_unplanned_properties: str = typer.Option("allow", help="allow or omit."),
    track_violations: str = typer.Option("allow", help="allow, omit or block."),
    identify_unplanned_traits: str = typer.Option("allow", help="allow or omit."),
    identify_violations: str = typer.Option("allow", help="allow, omit or block."),
    group_unplanned_traits: str = typer.Option("allow", help="allow or omit."),
    group_violations: str = typer.Option("allow", help="allow, omit or block."),
    forward_blocked_to: str | None = typer.Option(None, help="Source that receives blocked events."),
    forward_violations_to: str | None = typer.Option(None, help="Source that receives `Violation Generated` events."),
    url: str = Url,
    token: str | None = Token,
    data_dir: Path | None = DataDir,
) -> None:
    """Make a source follow a plan, with its enforcement settings (replaces earlier settings)."""
    enforcement: dict[str, Any] = {
        "track_unplanned_events": track_unplanned_events,
        "track_unplanned_properties": track_unplanned_properties,
        "track_violations": track_violations,
        "identify_unplanned_traits": identify_unplanned_traits,
        "identify_violations": identify_violations,
        "group_unplanned_traits": group_unplanned_traits,
        "group_violations": group_violations,
        "forward_blocked_to": forward_blocked_to,
        "forward_violations_to": forward_violations_to,
    }
    out = call(
        url,
        admin_token(token, data_dir),
        "PUT",
        _source_path(source, "/tracking-plan"),
        {"plan": plan, "enforcement": enforcement},
    )
    _say(f"source {out['source']} follows {out['plan']}")
    for key, value in out["enforcement"].items():
        if value is not None:
            _say(f"  {key}: {value}")


@app.command()
def detach(
    source: str = typer.Option(..., help="Source id or name."),
    url: str = Url,
    token: str | None = Token,
    data_dir: Path | None = DataDir,
) -> None:
    """Stop enforcing any plan on a source."""
    call(url, admin_token(token, data_dir), "DELETE", _source_path(source, "/tracking-plan"))
    _say(f"source {source} follows no tracking plan")


@app.command()
def violations(
    plan: str | None = typer.Argument(None, help="Only this plan."),
    source: str | None = typer.Option(None, help="Only this source (id or name)."),
    url: str = Url,
    token: str | None = Token,
    data_dir: Path | None = DataDir,
    workspace: str | None = Workspace,
    json_: bool = Json,
) -> None:
    """Violations per event, field and type, counted over the last 1 h, 24 h and 7 d."""
    if plan is None and source is None:
        fail("name a plan or --source")
    if plan is not None:
        path, params = _plan_path(plan, "/violations"), {"source": source, "workspace": workspace}
    else:
        path, params = _source_path(source or "", "/violations"), {}
    data = call(url, admin_token(token, data_dir), "GET", path, params=params)
    if json_:
        print(json.dumps(data, indent=2))
        return
    table = Table("source", "event", "field", "type", "1h", "24h", "7d", "example")
    for v in data["data"]:
        name = v["eventName"] or v["eventType"]
        c = v["counts"]
        table.add_row(
            v["source"],
            escape(name),
            escape(v["field"]),
            v["violationType"],
            str(c["1h"]),
            str(c["24h"]),
            str(c["7d"]),
            escape(v["description"]),
        )
    console.print(table)


@app.command()
def infer(
    source: str = typer.Option(..., help="Source id or name whose retained events to learn from."),
    name: str | None = typer.Option(None, help="Name of the drafted plan (default: <source>-draft)."),
    limit: int = typer.Option(1000, help="Look at about this many recent events."),
    format_: str = typer.Option("yaml", "--format", help="yaml or json."),
    output: Path | None = typer.Option(None, "-o", "--output", help="Write to this file instead of stdout."),
    url: str = Url,
    token: str | None = Token,
    data_dir: Path | None = DataDir,
) -> None:
    """Draft a plan from the source's recent traffic (types, required fields, enums) to review
    and then `eventyard plan import`."""
    if format_ not in ("yaml", "json"):
        fail("--format must be yaml or json")
    data = call(
        url,
        admin_token(token, data_dir),
        "GET",
        _source_path(source, "/tracking-plan/draft"),
        params={"name": name, "limit": limit},
    )
    if not data["rules"]:
        fail(f"source {source} has no retained events to learn from")
    _write(dumps(parse_plan({k: v for k, v in data.items() if k != "observedEvents"}), format_), output)


@app.command()
def typegen(
    plan: str = typer.Argument(..., help="A plan file (JSON/YAML), or the name of a plan on the server."),
    output: Path = typer.Option(..., "-o", "--output", help="The Python module to write (e.g. tracking.py)."),
    url: str = Url,
    token: str | None = Token,
    data_dir: Path | None = DataDir,
    workspace: str | None = Workspace,
) -> None:
    """Generate a typed Python tracking module: one function per event, typed properties,
    calling analytics-python's `track` (or any client with the same `track`)."""
    path = Path(plan)
    try:
        if path.is_file():
            parsed, version = loads(path.read_text(), None, str(path)), None
        else:
            data = call(url, admin_token(token, data_dir), "GET", _plan_path(plan), params={"workspace": workspace})
            parsed, version = parse_plan(data), data["version"]
    except ConfigError as exc:
        fail(str(exc))
    output.write_text(generate(parsed, version))
    tracks = sum(r.type == "TRACK" for r in parsed.rules)
    console.print(f"wrote {escape(str(output))}: {tracks} track functions", highlight=False)

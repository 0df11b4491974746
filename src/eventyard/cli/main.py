"""Entry point of the `eventyard` command."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

from eventyard import __version__
from eventyard.cli import apply as apply_cmd
from eventyard.cli import audit as audit_cmd
from eventyard.cli import consent as consent_cmd
from eventyard.cli import delivery as delivery_cmd
from eventyard.cli import new as new_cmd
from eventyard.cli import pii as pii_cmd
from eventyard.cli import plan as plan_cmd
from eventyard.cli import profile as profile_cmd
from eventyard.cli import regulate as regulate_cmd
from eventyard.cli import send as send_cmd
from eventyard.cli import serve as serve_cmd
from eventyard.cli import tail as tail_cmd
from eventyard.cli import token as token_cmd
from eventyard.cli import warehouse as warehouse_cmd
from eventyard.cli.apply import export as export_cmd
from eventyard.cli.common import ConfigOpt, DataDir, admin_token, console, settings_or_exit

app = typer.Typer(
    name="eventyard",
    help="Self-hostable Customer Data Platform: collect, unify, route.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(new_cmd.app, name="new")
app.add_typer(profile_cmd.app, name="profile")
app.add_typer(token_cmd.app, name="token")
app.add_typer(consent_cmd.app, name="consent")
app.add_typer(pii_cmd.app, name="pii")
app.add_typer(plan_cmd.app, name="plan")
app.add_typer(audit_cmd.app, name="audit")
app.add_typer(regulate_cmd.app, name="regulate")
warehouse_app = typer.Typer(help="The embedded warehouse (DuckDB): tables and columns.", no_args_is_help=True)
app.add_typer(warehouse_app, name="warehouse")


class CallType(StrEnum):
    track = "track"
    identify = "identify"
    page = "page"
    screen = "screen"
    group = "group"
    alias = "alias"


@app.command()
def serve(
    data_dir: Path | None = DataDir,
    host: str | None = typer.Option(None, help="Address to listen on (default 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port to listen on (default 8080)."),
    config: Path | None = ConfigOpt,
    log_level: str | None = typer.Option(None, help="critical, error, warning, info or debug."),
    role: list[str] | None = typer.Option(
        None, "--role", help="collect, unify, route, control or all (repeat or comma list; default all)."
    ),
    log: str | None = typer.Option(None, "--log", help="Log URL: nats://host:4222[,...] (default: SQLite)."),
    state: str | None = typer.Option(None, "--state", help="State URL: postgresql://... (default: SQLite)."),
    workers: int | None = typer.Option(
        None, "--workers", help="Processes serving the port (default 1; above 1 only with --role collect)."
    ),
) -> None:
    """Start the server (embedded SQLite by default); first start creates a workspace.

    Scale-out: --log nats://... --state postgresql://... and any number of processes per role
    (docs/deployment.md)."""
    settings = settings_or_exit(
        config,
        data_dir=str(data_dir) if data_dir else None,
        host=host,
        port=port,
        log_level=log_level,
        roles=",".join(role) if role else None,
        log=log,
        state=state,
        workers=workers,
    )
    serve_cmd.run(settings)


@app.command()
def apply(
    file: Path = typer.Option(..., "-f", "--file", help="Workspace YAML file."),
    data_dir: Path | None = DataDir,
    config: Path | None = ConfigOpt,
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the diff, change nothing."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Create or update workspaces and sources from a YAML file (idempotent; shows the diff first)."""
    settings = settings_or_exit(config, data_dir=str(data_dir) if data_dir else None)
    apply_cmd.run(settings, str(file), dry_run, yes)


@app.command()
def tail(
    url: str = typer.Option("http://127.0.0.1:8080", help="Base URL of the server."),
    token: str | None = typer.Option(None, help="Admin token (or EVENTYARD_ADMIN_TOKEN)."),
    data_dir: Path | None = DataDir,
    source: str | None = typer.Option(None, help="Only this source (id or name)."),
    type_: list[str] = typer.Option([], "--type", help="Only these call types (repeatable)."),
    event: list[str] = typer.Option([], "--event", help="Only these track event names (repeatable)."),
    rejected: bool = typer.Option(True, "--rejected/--no-rejected", help="Show refused events."),
    json_: bool = typer.Option(False, "--json", help="One JSON object per line, for scripts."),
    recent: int = typer.Option(0, help="Start with about this many recent events."),
    limit: int | None = typer.Option(None, help="Stop after this many events."),
) -> None:
    """Follow events as they arrive (live), filtered by source, type and event name."""
    tail_cmd.run(url, admin_token(token, data_dir), source, type_, event, rejected, json_, recent, limit)


@app.command()
def send(
    kind: CallType = typer.Argument(..., help="Call type."),
    write_key: str = typer.Option(..., "--write-key", "-k", help="Write key of the source."),
    url: str = typer.Option("http://127.0.0.1:8080", help="Base URL of the server."),
    event: str | None = typer.Option(None, help="Event name (track)."),
    name: str | None = typer.Option(None, help="Page or screen name."),
    user_id: str | None = typer.Option(None, "--user-id"),
    anonymous_id: str | None = typer.Option(None, "--anonymous-id"),
    properties: str | None = typer.Option(None, help="Properties as a JSON object."),
    traits: str | None = typer.Option(None, help="Traits as a JSON object."),
) -> None:
    """Send one event to a running server."""
    send_cmd.run(url, write_key, kind.value, event, name, user_id, anonymous_id, properties, traits)


Url = typer.Option("http://127.0.0.1:8080", help="Base URL of the server.")
Token = typer.Option(None, help="Admin token (or EVENTYARD_ADMIN_TOKEN, or the data directory's token file).")


@app.command()
def status(
    url: str = Url,
    token: str | None = Token,
    data_dir: Path | None = DataDir,
    window: int = typer.Option(3600, help="Look back this many seconds."),
    json_: bool = typer.Option(False, "--json", help="Print the overview as JSON."),
) -> None:
    """Delivery overview per destination: received, filtered (why), delivered, retrying, dead, latency."""
    delivery_cmd.status(url, admin_token(token, data_dir), window, json_)


@app.command()
def trace(
    message_id: str = typer.Argument(..., help="The event's messageId."),
    url: str = Url,
    token: str | None = Token,
    data_dir: Path | None = DataDir,
    json_: bool = typer.Option(False, "--json"),
) -> None:
    """Where one event went and why, at each stage and destination, with attempts and errors."""
    delivery_cmd.trace(url, admin_token(token, data_dir), message_id, json_)


@app.command()
def replay(
    destination: str = typer.Argument(..., help="Destination id or name."),
    start: str = typer.Option(..., "--from", help="Start of the time range (ISO-8601)."),
    end: str | None = typer.Option(None, "--to", help="End of the time range (default: now)."),
    source: list[str] = typer.Option([], help="Only these sources (repeatable)."),
    url: str = Url,
    token: str | None = Token,
    data_dir: Path | None = DataDir,
) -> None:
    """Deliver stored events of a time range again to one destination (e.g. a new one)."""
    delivery_cmd.replay(url, admin_token(token, data_dir), destination, start, end, source)


@app.command("dead-letters")
def dead_letters(
    destination: str = typer.Argument(..., help="Destination id or name."),
    resend: list[int] = typer.Option([], help="Re-send these dead letter ids (repeatable)."),
    resend_all: bool = typer.Option(False, "--resend-all", help="Re-send every dead letter of the destination."),
    limit: int = typer.Option(100, help="How many to list."),
    url: str = Url,
    token: str | None = Token,
    data_dir: Path | None = DataDir,
) -> None:
    """List a destination's dead letters with their last error, or re-send them."""
    delivery_cmd.dead_letters(url, admin_token(token, data_dir), destination, resend, resend_all, limit)


@app.command()
def sql(
    query: str = typer.Argument(..., help="One read-only statement (SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE)."),
    destination: str | None = typer.Option(None, help="Warehouse destination name (when several run)."),
    max_rows: int = typer.Option(1000, "--max-rows", help="Most rows to print (at most 10000)."),
    url: str = Url,
    token: str | None = Token,
    data_dir: Path | None = DataDir,
    json_: bool = typer.Option(False, "--json", help="Print columns and rows as JSON."),
) -> None:
    """Run a read-only SQL query on the embedded warehouse and print a table (through the server
    at --url; when none answers, on the data directory's DuckDB file, read-only)."""
    warehouse_cmd.sql(url, token, data_dir, query, destination, max_rows, json_)


@warehouse_app.command("describe")
def warehouse_describe(
    destination: str | None = typer.Option(None, help="Warehouse destination name (when several run)."),
    url: str = Url,
    token: str | None = Token,
    data_dir: Path | None = DataDir,
    json_: bool = typer.Option(False, "--json"),
) -> None:
    """List the warehouse's schemas, tables and columns (with types); like `sql`, without a
    running server it reads the data directory's DuckDB file directly."""
    warehouse_cmd.describe(url, token, data_dir, destination, json_)


@app.command()
def export(
    data_dir: Path | None = DataDir,
    config: Path | None = ConfigOpt,
    show_secrets: bool = typer.Option(False, "--show-secrets", help="Include destination secrets in clear."),
) -> None:
    """Print the whole configuration as a workspace file (round-trips with apply)."""
    settings = settings_or_exit(config, data_dir=str(data_dir) if data_dir else None)
    export_cmd(settings, show_secrets)


@app.command()
def version() -> None:
    """Print the version."""
    console.print(__version__)


if __name__ == "__main__":
    app()

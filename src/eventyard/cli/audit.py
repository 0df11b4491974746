"""`eventyard audit list|export`, and :func:`record_cli`: the audit entries of the command line.

Commands that work on the data directory themselves (``apply``, ``export``, ``sql`` and
``warehouse describe`` without a server, ``audit`` without a server) record what they did
with :func:`record_cli`, as ``cli:<OS user>`` from ``cli:<hostname>``. Commands that go
through a server's API are recorded by the server (with the token) and name the command line
in the entry's ``agent`` (see ``control.audit.cli_agent``), so nothing is recorded twice.

``list`` and ``export`` read the trail through the server at ``--url``; when no server
answers they read the data directory's state store directly (and record that read).
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

import typer
from rich.markup import escape
from rich.table import Table

from eventyard.cli.api import call
from eventyard.cli.common import DataDir, admin_token, console, err_console, fail, settings_or_exit
from eventyard.control import audit
from eventyard.control.audit_api import CSV_COLUMNS, EXPORT_PAGE, csv_row, entry_view, parse_time
from eventyard.control.http import ApiError
from eventyard.runtime.settings import Settings
from eventyard.state.base import StateStore

app = typer.Typer(help="The audit trail: who changed what, who read whose data.", no_args_is_help=True)

Url = typer.Option("http://127.0.0.1:8080", help="Base URL of the server.")
Token = typer.Option(None, help="Owner token (or EVENTYARD_ADMIN_TOKEN, or the data directory's token file).")
Since = typer.Option(None, help="From this time: an age (30m, 24h, 7d), unix seconds or ISO-8601.")
Until = typer.Option(None, help="Before this time (same forms as --since).")
Actor = typer.Option(None, help="Only this actor (e.g. tok_...:ci, cli:ana).")
Action = typer.Option(None, help="Only actions starting with this (profile. or profile.read).")
Workspace = typer.Option(None, help="Only this workspace (id or name).")


#: Actions of :func:`record_cli` recorded after the change (the others before the read).
_CHANGES = frozenset({"config.apply"})


class Format(StrEnum):
    jsonl = "jsonl"
    csv = "csv"


def record_cli(where: Settings | Path | None, action: str, target: str, detail: dict[str, Any] | None = None) -> None:
    """Append ``cli:<user>``'s entry to the state store of ``where`` (settings or data directory).

    Callable from plain and from async code. An entry that cannot be written ends the command
    with an error (after a change: the change was made; the message says so).
    """
    settings = where if isinstance(where, Settings) else settings_or_exit(None, data_dir=str(where) if where else None)
    if not settings.state and not settings.state_path().exists():
        err_console.print(f"audit: no state store in {settings.data_path}; this command was not recorded")
        return

    async def write() -> None:
        from eventyard.runtime.components import make_state

        state = make_state(settings)
        await state.start()
        try:
            await state.append_audit(None, audit.cli_actor(), action, target, audit.cli_origin(), detail or {})
        finally:
            await state.close()

    problem: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(write())
        except Exception as exc:
            problem.append(exc)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        run()
    else:  # called from async code: its own loop in a thread, for the moment it takes
        worker = threading.Thread(target=run)
        worker.start()
        worker.join()
    if problem:
        what = "the change was made but is not recorded" if action in _CHANGES else "nothing was read"
        fail(f"could not record `{action}` in the audit trail of {settings.data_path} ({what}): {problem[0]}", 1)


def _params(
    since: str | None, until: str | None, actor: str | None, action: str | None, workspace: str | None
) -> dict[str, Any]:
    return {"since": since, "until": until, "actor": actor, "action": action, "workspace": workspace}


def _print_table(entries: list[dict[str, Any]]) -> None:
    table = Table(title="audit trail")
    for column in ("id", "at (UTC)", "actor", "action", "target", "origin", "status"):
        table.add_column(column, overflow="fold")
    for e in entries:
        status = str(e["detail"].get("status", ""))
        style = "red" if status[:1] in ("4", "5") else ""
        cells = (str(e["id"]), e["at"][:19].replace("T", " "), e["actor"], e["action"], e["target"], e["origin"])
        table.add_row(*(escape(c) for c in cells), f"[{style}]{status}[/]" if style else status)
    console.print(table)


async def _workspace_id(state: StateStore, ref: str | None) -> str | None:
    if not ref:
        return None
    found = [w.id for w in await state.list_workspaces() if ref in (w.id, w.name)]
    if not found:
        fail(f"no workspace with id or name {ref!r}")
    return found[0]


async def _local_entries(settings: Settings, q: dict[str, Any], after: int, limit: int) -> list[dict[str, Any]]:
    from eventyard.runtime.components import make_state

    state = make_state(settings)
    await state.start()
    try:
        entries = await state.list_audit(
            await _workspace_id(state, q["workspace"]),
            since=q["since"],
            until=q["until"],
            actor=q["actor"],
            action=q["action"],
            after_id=after,
            limit=limit,
        )
        return [entry_view(e) for e in entries]
    finally:
        await state.close()


def _local_query(data_dir: Path | None, q: dict[str, Any]) -> tuple[Settings, dict[str, Any]]:
    import time

    settings = settings_or_exit(None, data_dir=str(data_dir) if data_dir else None)
    if not settings.state and not settings.state_path().exists():
        fail(f"no server answers and there is no state store in {settings.data_path} (is --data-dir right?)")
    err_console.print(f"no server answers: reading the audit trail of {settings.data_path} directly")
    parsed = dict(q)
    try:
        for name in ("since", "until"):
            parsed[name] = parse_time(q[name], name, time.time()) if q[name] else None
    except ApiError as exc:
        fail(exc.message)
    return settings, parsed


@app.command("list")
def list_cmd(
    since: str | None = Since,
    until: str | None = Until,
    actor: str | None = Actor,
    action: str | None = Action,
    workspace: str | None = Workspace,
    after: int = typer.Option(0, help="Entries after this id (the `next` printed by the previous page)."),
    limit: int = typer.Option(50, min=1, max=1000, help="How many entries (1-1000)."),
    json_: bool = typer.Option(False, "--json", help="Print the page as JSON."),
    url: str = Url,
    token: str | None = Token,
    data_dir: Path | None = DataDir,
) -> None:
    """A page of audit entries, oldest first, as a table (filters combine)."""
    from eventyard.cli.warehouse import server_answers

    q = _params(since, until, actor, action, workspace)
    if server_answers(url):
        data = call(
            url, admin_token(token, data_dir), "GET", "/api/v1/audit", params={**q, "after": after, "limit": limit}
        )
    else:
        settings, parsed = _local_query(data_dir, q)
        record_cli(settings, "audit.read", workspace or "*", {k: v for k, v in q.items() if v})
        entries = asyncio.run(_local_entries(settings, parsed, after, limit))
        data = {"data": entries, "next": entries[-1]["id"] if len(entries) == limit else None}
    if json_:
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return
    _print_table(data["data"])
    if data["next"] is not None:
        console.print(f"more: --after {data['next']}")


@app.command("export")
def export_cmd(
    format_: Format = typer.Option(Format.jsonl, "--format", help="jsonl (one JSON object a line) or csv."),
    output: Path | None = typer.Option(None, "-o", "--output", help="Write to this file (default: standard output)."),
    since: str | None = Since,
    until: str | None = Until,
    actor: str | None = Actor,
    action: str | None = Action,
    workspace: str | None = Workspace,
    url: str = Url,
    token: str | None = Token,
    data_dir: Path | None = DataDir,
) -> None:
    """Every matching audit entry, streamed as JSON lines or CSV."""
    from eventyard.cli.warehouse import server_answers

    q = _params(since, until, actor, action, workspace)
    out: IO[bytes] = output.open("wb") if output else sys.stdout.buffer
    try:
        if server_answers(url):
            written = _download(url, admin_token(token, data_dir), {**q, "format": format_.value}, out)
        else:
            settings, parsed = _local_query(data_dir, q)
            record_cli(settings, "audit.export", workspace or "*", {"format": format_.value})
            written = _export_local(settings, parsed, format_.value, out)
    finally:
        if output:
            out.close()
    if output:
        console.print(f"wrote {written:,} bytes to {output}")


@app.command("verify")
def verify_cmd(
    file: Path = typer.Argument(..., help="An earlier `eventyard audit export` (jsonl), kept out of reach."),
    holes: bool = typer.Option(
        True, "--holes/--no-holes", help="Also report ids missing from the trail's sequence (off for a bound token)."
    ),
    url: str = Url,
    token: str | None = Token,
    data_dir: Path | None = DataDir,
) -> None:
    """Check that every entry of an earlier export is still in the trail, unchanged (exit 1 if not)."""
    import tempfile

    from eventyard.cli.audit_verify import ExportFileError, compare, describe, read_export
    from eventyard.cli.warehouse import server_answers

    try:
        expected = read_export(file)
    except ExportFileError as exc:
        fail(str(exc))
    q = _params(expected[min(expected)]["at"], None, None, None, None)
    with tempfile.TemporaryFile() as current:
        if server_answers(url):
            _download(url, admin_token(token, data_dir), {**q, "format": "jsonl"}, current)
        else:
            settings, parsed = _local_query(data_dir, q)
            record_cli(settings, "audit.export", "*", {"format": "jsonl", "verify": str(file)})
            _export_local(settings, parsed, "jsonl", current)
        current.seek(0)
        report = compare(expected, (json.loads(line) for line in current))
    if not holes:
        report.holes = []
    for line in describe(report):
        console.print(line, highlight=False, markup=False)
    if not report.ok:
        raise typer.Exit(1)


def _download(url: str, token: str, params: dict[str, Any], out: IO[bytes]) -> int:
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    req = urllib.request.Request(
        f"{url.rstrip('/')}/api/v1/audit/export?{query}",
        headers={"Authorization": f"Bearer {token}", "User-Agent": audit.cli_agent()},
    )
    written = 0
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            while chunk := resp.read(65536):
                out.write(chunk)
                written += len(chunk)
    except urllib.error.HTTPError as exc:
        raw = exc.read().decode("utf-8", "replace")
        try:
            message = json.loads(raw).get("message", raw)
        except (json.JSONDecodeError, AttributeError):
            message = raw
        fail(f"{exc.code}: {message}")
    except urllib.error.URLError as exc:
        fail(f"cannot reach {url}: {exc.reason}")
    return written


def _export_local(settings: Settings, q: dict[str, Any], fmt: str, out: IO[bytes]) -> int:
    from eventyard.runtime.components import make_state

    async def go() -> int:
        state = make_state(settings)
        await state.start()
        written, after = 0, 0
        try:
            workspace_id = await _workspace_id(state, q["workspace"])
            if fmt == "csv":
                written += out.write((",".join(CSV_COLUMNS) + "\n").encode())
            while True:
                page = await state.list_audit(
                    workspace_id,
                    since=q["since"],
                    until=q["until"],
                    actor=q["actor"],
                    action=q["action"],
                    after_id=after,
                    limit=EXPORT_PAGE,
                )
                for entry in page:
                    line = csv_row(entry) if fmt == "csv" else json.dumps(entry_view(entry), ensure_ascii=False) + "\n"
                    written += out.write(line.encode())
                if len(page) < EXPORT_PAGE:
                    return written
                after = page[-1].id
        finally:
            await state.close()

    return asyncio.run(go())

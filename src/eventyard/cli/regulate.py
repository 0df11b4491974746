"""`eventyard regulate delete|suppress|unsuppress|status|list`: regulations from the command line.

Every command goes through a running server's regulations API (``/api/v1/regulations``,
see ``control.regulations_api``) with an owner or editor token. ``delete``, ``suppress`` and
``unsuppress`` take user ids as arguments and/or ``--file`` (one id per line, ``-`` for
stdin); ``--wait`` follows the regulation until every store is done, with a progress bar,
and exits 0 only when it FINISHED.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from eventyard.cli.common import DataDir, admin_token, console, fail
from eventyard.privacy.regulations import MAX_SUBJECTS, OPEN

app = typer.Typer(help="Delete and suppress users' data (GDPR/CCPA regulations).", no_args_is_help=True)

Url = typer.Option("http://127.0.0.1:8080", help="Base URL of the server.")
Token = typer.Option(None, help="Owner or editor token (or EVENTYARD_ADMIN_TOKEN, or the data directory's token file).")
Workspace = typer.Option(None, help="Workspace id or name (when the token sees several).")
Ids = typer.Argument(None, help="User ids.", show_default=False)
IdFile = typer.Option(None, "--file", help="Read user ids from this file, one per line ('-': stdin).")
Wait = typer.Option(False, "--wait", help="Follow the regulation until every store is done.")
Timeout = typer.Option(3600.0, help="With --wait: give up waiting after this many seconds.")
AsJson = typer.Option(False, "--json", help="Print JSON.")


def request(
    url: str, token: str, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None
) -> Any:
    """One API call; an error answer ends the command with its message."""
    target = url.rstrip("/") + path
    if params:
        target += "?" + urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", "User-Agent": "eventyard-cli"}
    req = urllib.request.Request(target, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read().decode("utf-8", "replace")
        try:
            answer = json.loads(raw)
            message = answer["errors"][0]["message"] if "errors" in answer else answer.get("message", raw)
        except (json.JSONDecodeError, AttributeError, LookupError, TypeError):
            message = raw
        fail(f"{exc.code}: {message}")
    except urllib.error.URLError as exc:
        fail(f"cannot reach {url}: {exc.reason}")


def subject_ids(ids: list[str] | None, file: Path | None) -> list[str]:
    found = list(ids or [])
    if file is not None:
        text = sys.stdin.read() if str(file) == "-" else _read(file)
        found += [line.strip() for line in text.splitlines() if line.strip()]
    if not found:
        fail("name at least one user id (arguments or --file)")
    if len(found) > MAX_SUBJECTS:
        fail(f"{len(found)} ids: at most {MAX_SUBJECTS} per regulation, split the list")
    return found


def _read(file: Path) -> str:
    try:
        return file.read_text()
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}")


def create(url: str, token: str, workspace: str | None, kind: str, subject_type: str, ids: list[str]) -> str:
    body = {"regulationType": kind, "subjectType": subject_type, "subjectIds": ids}
    answer = request(url, token, "POST", "/api/v1/regulations", body, {"workspace": workspace})
    reg_id: str = answer["data"]["regulateId"]
    console.print(f"regulation [bold]{reg_id}[/] ({kind}, {len(ids)} subject(s)) created")
    return reg_id


def get(url: str, token: str, reg_id: str) -> dict[str, Any]:
    answer = request(url, token, "GET", f"/api/v1/regulations/{urllib.parse.quote(reg_id)}")
    regulation: dict[str, Any] = answer["data"]["regulation"]
    return regulation


def follow(url: str, token: str, reg_id: str, timeout: float) -> dict[str, Any]:
    """Poll the regulation with a progress bar until no store is open (or ``timeout``)."""
    reg = get(url, token, reg_id)
    deadline = time.monotonic() + timeout
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} stores"))
    with Progress(*columns, TimeElapsedColumn(), console=console, transient=True) as progress:
        task = progress.add_task(reg["overallStatus"], total=len(reg["stores"]))
        while True:
            done = sum(1 for s in reg["stores"].values() if s["status"] not in OPEN)
            progress.update(task, completed=done, description=f"{reg_id}: {reg['overallStatus']}")
            if reg["overallStatus"] not in OPEN or time.monotonic() > deadline:
                return reg
            time.sleep(1.0)
            reg = get(url, token, reg_id)


def show(reg: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(reg, indent=2))
        return
    console.print(
        f"[bold]{reg['id']}[/] {reg['regulationType']} of {len(reg['subjectIds'])} {reg['subjectType']}(s): "
        f"[bold]{reg['overallStatus']}[/]  created {reg['createdAt']}"
        + (f", finished {reg['finishedAt']}" if reg.get("finishedAt") else "")
    )
    table = Table(title="what was done where")
    for col in ("store", "status", "removed", "detail"):
        table.add_column(col)
    names = {f"destination:{d['id']}": d["name"] for d in reg["streamStatus"][0]["destinationStatus"]}
    for store, st in reg["stores"].items():
        removed = ", ".join(f"{k} {v:,}" for k, v in st["removed"].items()) or "-"
        label = f"{names[store]} ({store})" if store in names else store
        color = {"FINISHED": "green", "FAILED": "red", "NOT_SUPPORTED": "yellow"}.get(st["status"], "cyan")
        table.add_row(escape(label), f"[{color}]{st['status']}[/]", removed, escape(st["detail"]))
    console.print(table)


def _run(
    url: str,
    token: str | None,
    data_dir: Path | None,
    workspace: str | None,
    kind: str,
    subject: str,
    ids: list[str],
    wait: bool,
    timeout: float,
) -> None:
    secret = admin_token(token, data_dir)
    reg_id = create(url, secret, workspace, kind, subject, ids)
    if not wait:
        console.print(f"follow it with: eventyard regulate status {reg_id}")
        return
    reg = follow(url, secret, reg_id, timeout)
    show(reg, False)
    if reg["overallStatus"] != "FINISHED":
        raise typer.Exit(1)


@app.command()
def delete(
    ids: list[str] | None = Ids,
    file: Path | None = IdFile,
    suppress: bool = typer.Option(False, "--suppress", help="Also refuse the users' future events."),
    internal: bool = typer.Option(
        False, "--internal", help="Only eventyard's own stores (log, profiles, warehouses, files): no destination."
    ),
    wait: bool = Wait,
    timeout: float = Timeout,
    url: str = Url,
    token: str | None = Token,
    workspace: str | None = Workspace,
    data_dir: Path | None = DataDir,
) -> None:
    """Delete users' data everywhere it is kept (DELETE_ONLY; --suppress: SUPPRESS_WITH_DELETE)."""
    kind = "SUPPRESS_WITH_DELETE" if suppress else "DELETE_ONLY"
    if internal:
        kind = "SUPPRESS_WITH_DELETE_INTERNAL" if suppress else "DELETE_INTERNAL"
    _run(url, token, data_dir, workspace, kind, "USER_ID", subject_ids(ids, file), wait, timeout)


@app.command()
def suppress(
    ids: list[str] | None = Ids,
    file: Path | None = IdFile,
    anonymous: bool = typer.Option(False, "--anonymous", help="The ids are anonymousIds, not userIds."),
    wait: bool = Wait,
    timeout: float = Timeout,
    url: str = Url,
    token: str | None = Token,
    workspace: str | None = Workspace,
    data_dir: Path | None = DataDir,
) -> None:
    """Refuse users' events from now on (SUPPRESS_ONLY); their SDKs still get 200."""
    subject = "ANONYMOUS_ID" if anonymous else "USER_ID"
    _run(url, token, data_dir, workspace, "SUPPRESS_ONLY", subject, subject_ids(ids, file), wait, timeout)


@app.command()
def unsuppress(
    ids: list[str] | None = Ids,
    file: Path | None = IdFile,
    anonymous: bool = typer.Option(False, "--anonymous", help="The ids are anonymousIds, not userIds."),
    wait: bool = Wait,
    timeout: float = Timeout,
    url: str = Url,
    token: str | None = Token,
    workspace: str | None = Workspace,
    data_dir: Path | None = DataDir,
) -> None:
    """Accept users' events again (UNSUPPRESS)."""
    subject = "ANONYMOUS_ID" if anonymous else "USER_ID"
    _run(url, token, data_dir, workspace, "UNSUPPRESS", subject, subject_ids(ids, file), wait, timeout)


@app.command()
def status(
    regulation_id: str = typer.Argument(..., help="The regulation's id (reg_...)."),
    wait: bool = Wait,
    timeout: float = Timeout,
    as_json: bool = AsJson,
    url: str = Url,
    token: str | None = Token,
    data_dir: Path | None = DataDir,
) -> None:
    """The deletion report: the status of every store and what was removed where."""
    secret = admin_token(token, data_dir)
    reg = follow(url, secret, regulation_id, timeout) if wait else get(url, secret, regulation_id)
    show(reg, as_json)


@app.command("list")
def list_(
    status_: str | None = typer.Option(None, "--status", help="Only regulations in this status (e.g. RUNNING)."),
    as_json: bool = AsJson,
    url: str = Url,
    token: str | None = Token,
    workspace: str | None = Workspace,
    data_dir: Path | None = DataDir,
) -> None:
    """Regulations of the workspace, newest first."""
    secret = admin_token(token, data_dir)
    params = {"workspace": workspace, "status": status_, "pagination.count": 200}
    regs = request(url, secret, "GET", "/api/v1/regulations", params=params)["data"]["regulations"]
    if as_json:
        print(json.dumps(regs, indent=2))
        return
    table = Table(title="regulations")
    for col in ("id", "type", "subjects", "status", "created", "finished"):
        table.add_column(col)
    for r in regs:
        more = len(r["subjectIds"]) - 3
        subjects = ", ".join(r["subjectIds"][:3]) + (f" (+{more})" if more > 0 else "")
        finished = r["finishedAt"] or "-"
        table.add_row(r["id"], r["regulationType"], escape(subjects), r["overallStatus"], r["createdAt"], finished)
    console.print(table)

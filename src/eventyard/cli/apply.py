"""`eventyard apply -f workspace.yaml`: show the diff, then create and update."""

from __future__ import annotations

import asyncio
import sys

import typer

from eventyard.cli.audit import record_cli
from eventyard.cli.common import console, fail
from eventyard.control import identity_apply, workspace_apply, workspace_file
from eventyard.errors import ConfigFileError, EventyardError
from eventyard.runtime.components import make_state
from eventyard.runtime.settings import Settings


def run(settings: Settings, path: str, dry_run: bool, yes: bool) -> None:
    try:
        desired = workspace_file.load(path)
    except ConfigFileError as exc:
        fail(str(exc))

    async def go() -> None:
        state = make_state(settings)
        await state.start()
        identity = await identity_apply.opened(settings, state, desired)  # when the file declares identity_rules
        try:
            changes = await workspace_apply.plan(state, desired, identity)
            if not changes:
                console.print("no changes: the state already matches the file")
                return
            console.print(f"[bold]{len(changes)} change(s):[/]")
            for change in changes:
                colour = "green" if change.action == "create" else "yellow"
                console.print(f"  [{colour}]{change.describe()}[/]", highlight=False)
            if dry_run:
                console.print("dry run: nothing applied")
                return
            if not yes and sys.stdin.isatty() and not typer.confirm("apply these changes?"):
                console.print("nothing applied")
                return
            await workspace_apply.apply(state, desired, identity)
            record_cli(settings, "config.apply", path, {"changes": [c.describe() for c in changes][:200]})
            console.print("[bold green]applied[/]")
            for ws in desired.workspaces:
                found = await state.workspace_by_name(ws.name)
                if found is None:
                    continue
                for source in await state.list_sources(found.id):
                    console.print(f"  {ws.name}/{source.name}  write key: {source.write_key}")
        finally:
            if identity is not None:
                await identity.close()
            await state.close()

    try:
        asyncio.run(go())
    except EventyardError as exc:
        fail(str(exc))


def export(settings: Settings, show_secrets: bool) -> None:
    async def go() -> str:
        state = make_state(settings)
        await state.start()
        identity = await identity_apply.opened(settings, state)  # identity_rules are read back too
        try:
            record_cli(settings, "config.export", "*", {"secrets": show_secrets})
            return await workspace_apply.export(state, redact_settings=not show_secrets, identity=identity)
        finally:
            if identity is not None:
                await identity.close()
            await state.close()

    try:
        sys.stdout.write(asyncio.run(go()))
    except EventyardError as exc:
        fail(str(exc))

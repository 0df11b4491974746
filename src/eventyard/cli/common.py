"""Helpers shared by CLI commands: settings, errors, the admin token."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console

from eventyard.errors import ConfigError
from eventyard.runtime.bootstrap import read_token_file
from eventyard.runtime.settings import Settings, load_settings

console = Console()
err_console = Console(stderr=True)

DataDir = typer.Option(None, "--data-dir", help="Data directory (default: ./eventyard-data).")
ConfigOpt = typer.Option(None, "--config", help="Settings file (TOML or YAML).")


def fail(message: str, code: int = 2) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def settings_or_exit(config: Path | None = None, **overrides: Any) -> Settings:
    try:
        return load_settings(config, overrides)
    except ConfigError as exc:
        fail(str(exc))


def admin_token(explicit: str | None, data_dir: Path | None) -> str:
    token = explicit or os.environ.get("EVENTYARD_ADMIN_TOKEN")
    if token:
        return token
    directory = (data_dir or Path("eventyard-data")).expanduser().resolve()
    token = read_token_file(directory)
    if token:
        return token
    fail(
        "no admin token: pass --token, set EVENTYARD_ADMIN_TOKEN, "
        f"or point --data-dir at the server's data directory (no token file in {directory})"
    )

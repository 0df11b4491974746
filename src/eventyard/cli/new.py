"""``eventyard new destination NAME``: a ready-to-edit package for a destination plugin.

The files come from ``templates/destination/`` beside this module: every ``*.tmpl`` file is
copied without its suffix, a ``__package__`` path part becomes the package name, and
``{{name}}``, ``{{package}}``, ``{{distribution}}``, ``{{class_name}}``, ``{{title}}`` and
``{{eventyard_version}}`` are replaced. The package works as generated (it POSTs batches to
an HTTP API) and its tests run eventyard's conformance suite.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

import typer

from eventyard import __version__
from eventyard.cli.common import console, fail
from eventyard.destinations import registry
from eventyard.errors import ConfigError

TEMPLATES = Path(__file__).parent / "templates"
NAME = re.compile(r"[a-z][a-z0-9_]*")
PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


@dataclass(frozen=True)
class Names:
    """Every spelling of a destination's name the templates need."""

    #: Registry name (the entry point), lower_snake_case: ``my_crm``.
    name: str
    #: Python package: ``eventyard_my_crm``.
    package: str
    #: Distribution on an index: ``eventyard-my-crm``.
    distribution: str
    #: Class name prefix: ``MyCrm`` (``MyCrmDestination``, ``MyCrmSettings``).
    class_name: str
    #: For humans: ``My Crm``.
    title: str
    eventyard_version: str = __version__

    @classmethod
    def of(cls, raw: str) -> Names:
        name = raw.strip().lower().replace("-", "_")
        if not NAME.fullmatch(name):
            hint = "use letters, digits, '_' or '-', starting with a letter"
            raise ConfigError(f"invalid destination name {raw!r}: {hint}")
        words = [w for w in name.split("_") if w]
        return cls(
            name=name,
            package=f"eventyard_{name}",
            distribution="eventyard-" + "-".join(words),
            class_name="".join(w.capitalize() for w in words),
            title=" ".join(w.capitalize() for w in words),
        )


def render(text: str, values: dict[str, str]) -> str:
    """``text`` with each ``{{key}}`` replaced; an unknown key is an error (of the template)."""

    def value(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise KeyError(f"template placeholder {{{{{key}}}}} has no value")
        return values[key]

    return PLACEHOLDER.sub(value, text)


def run(name: str, directory: Path, template: str = "destination") -> Path:
    """Write the package for destination ``name`` into ``directory/<name>``; return that folder."""
    names = Names.of(name)
    taken = registry.available().get(names.name)
    if taken is not None:
        raise ConfigError(f"a destination named {names.name!r} is already installed ({taken}); choose another name")
    target = directory / names.name
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConfigError(f"{target} already exists and is not empty; choose another name or directory")
    root = TEMPLATES / template
    values = {k: str(v) for k, v in asdict(names).items()}
    for source in sorted(root.rglob("*.tmpl")):
        parts = [names.package if part == "__package__" else part for part in source.relative_to(root).parts]
        out = (target / Path(*parts)).with_suffix("")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render(source.read_text(encoding="utf-8"), values), encoding="utf-8")
    return target


app = typer.Typer(help="Create a ready-to-edit package for a plugin.", no_args_is_help=True)


@app.callback()
def new() -> None:
    """Create a ready-to-edit package for a plugin."""


@app.command()
def destination(
    name: str = typer.Argument(..., help="Destination name, e.g. my_crm (the entry point and `type:`)."),
    directory: Path = typer.Option(Path("."), "--directory", "-d", help="Where the package folder goes."),
) -> None:
    """A destination package: Settings, capabilities, deliver/check/delete_user, conformance tests."""
    try:
        target = run(name, directory)
    except ConfigError as exc:
        fail(str(exc))
    names = Names.of(name)
    console.print(f"Created destination [bold]{names.name}[/] in {target}", highlight=False)
    console.print(f"  edit   {target / 'src' / names.package / 'destination.py'}", highlight=False, markup=False)
    console.print(f"  test   cd {target} && pip install -e '.[test]' && pytest", highlight=False, markup=False)

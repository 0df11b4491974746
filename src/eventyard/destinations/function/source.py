"""Where a function's module is, and which handlers it defines, found without running it.

``capabilities_for`` must not import user code into eventyard's own process, so the handlers
are read from the module's source: top-level ``def``/``async def``, assignments and imports
named like a handler. This is a preview for capabilities (deletes, batching); the worker
process, which really imports the module, has the last word at delivery time.
"""

from __future__ import annotations

import ast
import importlib.machinery
import os
import sys
from pathlib import Path

from eventyard.destinations.function.protocol import HANDLER_NAMES


def is_path(module: str) -> bool:
    """Whether ``module`` names a file (``handlers.py``, ``./fn/x.py``) rather than a module name."""
    return module.endswith(".py") or "/" in module or os.sep in module


def resolve(module: str) -> str:
    """A file path made absolute (the worker may run elsewhere); a module name unchanged."""
    return str(Path(module).expanduser().resolve()) if is_path(module) else module


def source_file(module: str) -> Path | None:
    """The ``.py`` file behind ``module``, found without importing anything; ``None`` if unknown."""
    if is_path(module):
        path = Path(module).expanduser()
        return path if path.is_file() else None
    spec = None
    # The worker runs with ``python -m``, which puts the working directory first on sys.path.
    search: list[str] | None = [os.getcwd(), *sys.path]
    parts = module.split(".")
    for i in range(len(parts)):
        try:
            spec = importlib.machinery.PathFinder.find_spec(".".join(parts[: i + 1]), search)
        except (ImportError, ValueError):
            return None
        if spec is None:
            return None
        search = list(spec.submodule_search_locations or [])
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin)


def declared_handlers(module: str) -> frozenset[str] | None:
    """Handler names defined at the top level of the module's source; ``None`` if it cannot be read."""
    path = source_file(module)
    if path is None:
        return None
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return None
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign | ast.AugAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return frozenset(names & HANDLER_NAMES)

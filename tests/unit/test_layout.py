"""The dependency rule of the package layout, checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import eventyard

ROOT = Path(eventyard.__file__).parent
STAGES = ("collect", "unify", "route")


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            # ``from eventyard import functions`` imports eventyard.functions
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_stages_never_import_each_other() -> None:
    problems = []
    for stage in STAGES:
        for path in (ROOT / stage).rglob("*.py"):
            for module in imports_of(path):
                for other in STAGES:
                    if other != stage and module.startswith(f"eventyard.{other}"):
                        problems.append(f"{path.relative_to(ROOT)} imports {module}")
    assert problems == []


def test_only_runtime_picks_concrete_backends() -> None:
    concrete = (
        "eventyard.log.sqlite",
        "eventyard.state.sqlite",
        "eventyard.log.memory",
        "eventyard.state.identity_sqlite",
        "eventyard.state.identity_postgres",
        "eventyard.log.jetstream",
        "eventyard.state.postgres",
    )
    problems = []
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in ("runtime", "testing", "log", "state"):
            continue
        for module in imports_of(path):
            if module in concrete:
                problems.append(f"{rel} imports {module}")
    assert problems == []


def test_spec_does_no_io() -> None:
    forbidden = ("asyncio", "sqlite3", "socket", "aiohttp", "starlette", "eventyard.log", "eventyard.state")
    for path in (ROOT / "spec").rglob("*.py"):
        for module in imports_of(path):
            assert not module.startswith(forbidden), f"{path.name} imports {module}"


def test_destinations_import_only_the_contract_spec_warehouse_and_errors() -> None:
    allowed = (
        "eventyard.destinations",
        "eventyard.spec",
        "eventyard.warehouse",
        "eventyard.errors",
        "eventyard.functions",
        "eventyard.child_process",  # dying with the server, saying how a child process ended
    )
    problems = []
    for path in (ROOT / "destinations").rglob("*.py"):
        if path.name == "registry.py":
            continue
        for module in imports_of(path):
            if module.startswith("eventyard.") and not module.startswith(allowed):
                problems.append(f"{path.relative_to(ROOT)} imports {module}")
    assert problems == []

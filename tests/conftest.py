"""Shared fixtures: an in-process app with a real SQLite log, and a real server subprocess."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from eventyard.collect.app import CollectApp
from eventyard.runtime.app import create_app
from eventyard.runtime.components import Components, build
from eventyard.runtime.settings import Settings
from eventyard.state.base import Source
from eventyard.testing.server import ServerProcess

IN_CI = os.environ.get("CI") == "true"


def require_service(available: bool, what: str) -> None:
    """Skip locally when a service is missing; under CI=true a missing service is a failure."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{what} is required under CI=true but is not available")
    pytest.skip(f"{what} is not available")


@dataclass
class AppHarness:
    app: CollectApp
    components: Components
    source: Source
    data_dir: Path

    @property
    def write_key(self) -> str:
        return self.source.write_key


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[AppHarness]:
    """The whole app in-process over a real SQLite log and state store in ``tmp_path``."""
    settings = Settings(data_dir=str(tmp_path / "data"))
    components = build(settings)
    app = create_app(settings, components)
    await components.start()
    ws = await components.state.create_workspace("default")
    source = await components.state.create_source(ws.id, "web", write_key="wk-test-0001")
    await components.sources.reload()
    try:
        yield AppHarness(app, components, source, tmp_path / "data")
    finally:
        await components.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A real `eventyard serve` subprocess with a known write key and admin token."""
    with ServerProcess(tmp_path / "data") as srv:
        yield srv

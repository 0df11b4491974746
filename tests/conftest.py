"""Shared fixtures: an in-process app with a real SQLite log, and a real server subprocess."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from eventyard.testing.harness import AppHarness, running_app
from eventyard.testing.server import ServerProcess
from eventyard.testing.services import require_service

__all__ = ["require_service"]  # tests import it from eventyard.testing.services


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[AppHarness]:
    """The whole app in-process over a real SQLite log and state store in ``tmp_path``."""
    async with running_app(tmp_path / "data") as h:
        yield h


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A real `eventyard serve` subprocess with a known write key and admin token."""
    with ServerProcess(tmp_path / "data") as srv:
        yield srv

"""Shared fixtures: an in-process app with a real SQLite log, and a real server subprocess."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from eventyard.testing.harness import AppHarness, running_app
from eventyard.testing.server import ServerProcess

IN_CI = os.environ.get("CI") == "true"


def require_service(available: bool, what: str) -> None:
    """Skip locally when a service is missing; under CI=true a missing service is a failure."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{what} is required under CI=true but is not available")
    pytest.skip(f"{what} is not available")


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

"""The whole app in-process over a real SQLite log and state store in a directory."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from eventyard.collect.app import CollectApp
from eventyard.runtime.app import create_app
from eventyard.runtime.components import Components, build
from eventyard.runtime.settings import Settings
from eventyard.state.base import Source
from eventyard.state.ids import hash_token


@dataclass
class AppHarness:
    app: CollectApp
    components: Components
    source: Source
    data_dir: Path
    admin_token: str = "eyt_harness-admin-token"

    @property
    def write_key(self) -> str:
        return self.source.write_key


@contextlib.asynccontextmanager
async def running_app(data_dir: Path, write_key: str = "wk-test-0001") -> AsyncIterator[AppHarness]:
    """Start the components, create workspace ``default`` with source ``web``, yield, stop."""
    # Tests poll the control API in tight loops; the rate limit has tests of its own.
    settings = Settings(data_dir=str(data_dir), admin_rate_limit_per_second=0)
    components = build(settings)
    app = create_app(settings, components)
    await components.start()
    try:
        ws = await components.state.create_workspace("default")
        source = await components.state.create_source(ws.id, "web", write_key=write_key)
        harness = AppHarness(app, components, source, data_dir)
        await components.state.add_token("harness", "owner", hash_token(harness.admin_token))
        await components.sources.reload()
        yield harness
    finally:
        await components.close()

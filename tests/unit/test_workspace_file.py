"""Workspace files: destinations and connections are checked with file positions, and round-trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventyard.control import workspace_apply
from eventyard.control.workspace_file import parse
from eventyard.errors import ConfigFileError
from eventyard.state.sqlite import SQLiteStateStore

GOOD = """\
workspaces:
  - name: acme
    sources:
      - name: web
        write_key: acme-web-key-1
    destinations:
      - name: hook
        type: webhook
        settings:
          url: http://127.0.0.1:9/x
          secret: very-secret-value
        delivery: {max_attempts: 3, ordering: true}
    connections:
      - source: web
        destination: hook
"""


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        (GOOD.replace("type: webhook", "type: carrier-pigeon"), (8, 15), "no destination type 'carrier-pigeon'"),
        (GOOD.replace("url: http://127.0.0.1:9/x", "urll: http://127.0.0.1:9/x"), (10, 11), "unknown field `urll`"),
        (GOOD.replace("max_attempts: 3", "max_attempts: 0"), (12, 19), "`max_attempts` must be at least 1"),
        (GOOD.replace("destination: hook", "destination: hoook"), (15, 22), "no destination 'hoook'"),
        (GOOD.replace("source: web", "source: app"), (14, 17), "no source 'app'"),
    ],
)
def test_errors_point_at_the_file_position(text: str, where: tuple[int, int], message: str) -> None:
    with pytest.raises(ConfigFileError) as exc:
        parse(text, "ws.yaml")
    assert (exc.value.line, exc.value.column) == where, str(exc.value)
    assert message in str(exc.value)


async def test_apply_is_idempotent_and_export_round_trips(tmp_path: Path) -> None:
    state = SQLiteStateStore(tmp_path / "state.sqlite3")
    await state.start()
    try:
        desired = parse(GOOD)
        changes = await workspace_apply.apply(state, desired)
        assert [c.describe() for c in changes] == [
            "+ workspace acme",
            "+ source acme/web",
            "+ destination acme/hook: webhook",
            "+ connection acme/web -> hook",
        ]
        assert await workspace_apply.plan(state, desired) == []
        exported = await workspace_apply.export(state)
        assert "very-secret-value" not in exported and "…alue" in exported
        full = await workspace_apply.export(state, redact_settings=False)
        assert await workspace_apply.plan(state, parse(full)) == []
        changed = parse(GOOD.replace("max_attempts: 3", "max_attempts: 5"))
        (change,) = await workspace_apply.plan(state, changed)
        assert change.describe() == "~ destination acme/hook: max_attempts 3 -> 5"
    finally:
        await state.close()

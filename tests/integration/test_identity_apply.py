"""Identity rules in workspace.yaml: validated like PUT /api/v1/identity/rules, applied by
`eventyard apply`, read back by `eventyard export` and `eventyard profile rules`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from eventyard.control import workspace_apply
from eventyard.control.identity_apply import opened, rules_of
from eventyard.control.workspace_file import parse
from eventyard.errors import ConfigFileError
from eventyard.runtime.settings import Settings
from eventyard.state.sqlite import SQLiteStateStore

WORKSPACE = """\
workspaces:
  - name: acme
    sources:
      - name: web
        write_key: acme-web-key-1
    identity_rules:
      identifiers:
        - {type: user_id, limit: 1, period: ever}
        - {type: email, limit: 3, period: weekly}
        - {type: anonymous_id, limit: 10, period: 30 days}
      blocked_values: ["-1", "null", "test@example.com"]
"""


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("EVENTYARD_")}
    return subprocess.run(
        [sys.executable, "-m", "eventyard.cli.main", *args],
        env={**base, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "workspaces:\n  - name: acme\n    identity_rules:\n      identifiers:\n        - {type: email, limit: x}\n",
            r"<input>:5:\d+: identity rules: Expected `int`, got `str` \(at \$\.workspaces\[0\]\.identity_rules"
            r"\.identifiers\[0\]\.limit\)",
        ),
        (
            "workspaces:\n  - name: acme\n    identity_rules: [user_id]\n",
            r"<input>:3:21: identity rules: the identity rules must be a mapping",
        ),
        (
            "workspaces:\n  - name: acme\n    identity_rules:\n      max_merges: -1\n",
            r"<input>:4:7: identity rules: `max_merges` must be at least 1",
        ),
    ],
)
def test_bad_rules_in_the_file_name_the_position(text: str, expected: str) -> None:
    with pytest.raises(ConfigFileError) as raised:
        parse(text)
    assert re.search(expected, str(raised.value)), str(raised.value)


def test_the_file_and_the_api_check_rules_alike() -> None:
    with pytest.raises(ValueError, match="must be a mapping"):
        rules_of(["user_id"])
    assert rules_of(None) == rules_of({})  # nothing declared: the defaults
    parsed = parse(WORKSPACE)
    assert rules_of(parsed.workspaces[0].identity_rules).blocked_values == ["-1", "null", "test@example.com"]


async def test_apply_sets_the_rules_once_and_export_reads_them_back(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path))
    state = SQLiteStateStore(settings.state_path())
    await state.start()
    identity = await opened(settings, state, parse(WORKSPACE))
    assert identity is not None
    try:
        desired = parse(WORKSPACE)
        first = await workspace_apply.apply(state, desired, identity)
        assert "+ identity rules acme" in [c.describe() for c in first]
        acme = await state.workspace_by_name("acme")
        assert acme is not None
        rules = await identity.rules(acme.id)
        assert [(r.type, r.limit) for r in rules.identifiers] == [("user_id", 1), ("email", 3), ("anonymous_id", 10)]
        assert await workspace_apply.plan(state, desired, identity) == []  # in sync: nothing to do

        changed = parse(WORKSPACE.replace('"test@example.com"', '"test@example.com", "n/a"'))
        plan = [c.describe() for c in await workspace_apply.plan(state, changed, identity)]
        assert plan == ["~ identity rules acme: blocked_values changed"]
        await workspace_apply.apply(state, changed, identity)
        assert "n/a" in (await identity.rules(acme.id)).blocked_values

        exported = yaml.safe_load(await workspace_apply.export(state, identity=identity))
        [ws] = exported["workspaces"]
        assert ws["identity_rules"]["blocked_values"] == ["-1", "null", "test@example.com", "n/a"]
        round_trip = parse(yaml.safe_dump(exported))  # the export is a valid file again
        assert await workspace_apply.plan(state, round_trip, identity) == []

        # a workspace that declares no rules keeps what it has; without them nothing is exported
        plain = parse(WORKSPACE.split("    identity_rules:")[0])
        assert await workspace_apply.plan(state, plain, None) == []
        await state.create_workspace("other")
        names = [
            w["name"] for w in yaml.safe_load(await workspace_apply.export(state, identity=identity))["workspaces"]
        ]
        others = yaml.safe_load(await workspace_apply.export(state, identity=identity))["workspaces"]
        assert names == ["acme", "other"] and "identity_rules" not in others[1]
    finally:
        await identity.close()
        await state.close()


@pytest.mark.slow
def test_eventyard_apply_and_profile_rules_on_the_command_line(tmp_path: Path) -> None:
    f = tmp_path / "workspace.yaml"
    f.write_text(WORKSPACE)
    data = ["--data-dir", str(tmp_path / "d")]
    dry = cli("apply", "-f", str(f), *data, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "+ identity rules acme" in dry.stdout
    applied = cli("apply", "-f", str(f), *data, "--yes")
    assert applied.returncode == 0, applied.stderr
    again = cli("apply", "-f", str(f), *data, "--yes")
    assert "no changes" in again.stdout, again.stdout
    exported = cli("export", *data)
    assert exported.returncode == 0, exported.stderr
    assert yaml.safe_load(exported.stdout)["workspaces"][0]["identity_rules"]["identifiers"][1] == {
        "type": "email",
        "limit": 3,
        "period": "weekly",
        "enabled": True,
    }

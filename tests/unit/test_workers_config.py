"""The ``workers`` setting: several collect processes on one port, refused where it would split state."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from eventyard.cli.main import app
from eventyard.errors import ConfigError
from eventyard.runtime.components import build
from eventyard.runtime.settings import Settings, load_settings


def settings(environ: dict[str, str] | None = None, **overrides: object) -> Settings:
    return load_settings(None, dict(overrides), environ=environ or {})


def test_one_process_by_default() -> None:
    assert settings().workers == 1


def test_workers_from_flags_env_and_file(tmp_path: Path) -> None:
    assert settings(roles="collect", workers=3).workers == 3
    assert settings({"EVENTYARD_ROLES": "collect", "EVENTYARD_WORKERS": "2"}).workers == 2
    config = tmp_path / "eventyard.toml"
    config.write_text('roles = ["collect"]\nworkers = 4\n')
    assert load_settings(config, {}, environ={}).workers == 4


@pytest.mark.parametrize("roles", ["all", "collect,control", "collect,unify", "unify"])
def test_workers_need_a_collect_only_process(roles: str) -> None:
    with pytest.raises(ConfigError, match="`workers` above 1 needs `roles` = collect"):
        settings(roles=roles, workers=2)
    assert settings(roles=roles, workers=1).workers == 1


def test_at_least_one_worker() -> None:
    with pytest.raises(ConfigError, match="`workers` must be at least 1"):
        settings(roles="collect", workers=0)


def test_serve_refuses_workers_with_other_roles_before_it_binds(tmp_path: Path) -> None:
    done = CliRunner().invoke(app, ["serve", "--data-dir", str(tmp_path / "data"), "--workers", "2"], env={})
    assert done.exit_code != 0
    assert "`workers` above 1 needs `roles` = collect" in done.output
    assert not (tmp_path / "data").exists()


def test_the_first_process_purges_by_default(tmp_path: Path) -> None:
    # Extra workers are built the same way and then told not to (runtime/workers.py).
    assert build(settings(data_dir=str(tmp_path / "data"), roles="collect", workers=2)).purge is True

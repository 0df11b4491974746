"""``eventyard new destination``: the generated package installs, passes eventyard's conformance
suite and its own tests, and is clean under ruff and mypy --strict as generated."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTYARD_")}
    return subprocess.run(
        [sys.executable, "-m", "eventyard.cli.main", *args],
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("new-destination")
    result = cli("new", "destination", "acme-crm", "--directory", str(root))
    assert result.returncode == 0, result.stderr
    assert "Created destination acme_crm" in result.stdout
    assert "pip install -e '.[test]'" in result.stdout
    return root / "acme_crm"


def test_the_package_has_its_files_and_entry_point(generated: Path) -> None:
    files = sorted(str(p.relative_to(generated)) for p in generated.rglob("*") if p.is_file())

    assert files == [
        "README.md",
        "pyproject.toml",
        "src/eventyard_acme_crm/__init__.py",
        "src/eventyard_acme_crm/destination.py",
        "tests/test_conformance.py",
        "tests/test_destination.py",
    ]
    pyproject = (generated / "pyproject.toml").read_text()
    assert 'acme_crm = "eventyard_acme_crm.destination:AcmeCrmDestination"' in pyproject
    assert 'name = "eventyard-acme-crm"' in pyproject
    for path in generated.rglob("*"):
        if path.is_file():
            assert "{{" not in path.read_text(), f"placeholder left in {path.name}"


def test_the_installed_package_passes_the_conformance_suite(generated: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    # Offline and fast when the build backend is already here (eventyard's dev extras have it).
    isolation = ["--no-build-isolation"] if importlib.util.find_spec("hatchling") else []
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", *isolation]
    install = subprocess.run(
        [*pip, "--target", str(site), str(generated)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    assert (site / "eventyard_acme_crm-0.1.0.dist-info" / "entry_points.txt").exists()

    pythonpath = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider"],
        cwd=generated,
        env={**os.environ, "PYTHONPATH": pythonpath},
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert run.returncode == 0, run.stdout + run.stderr
    summary = run.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"=+ \d+ passed in [\d.]+s =+", summary), summary
    # Found through its entry point, as eventyard finds it once installed.
    assert "test_conformance.py::TestAcmeCrmConformance::test_registered_under_its_name PASSED" in run.stdout


def test_the_generated_code_is_lint_and_type_clean(generated: Path, tmp_path: Path) -> None:
    ruff = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=generated, capture_output=True, text=True
    )
    fmt = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "--no-cache", "."],
        cwd=generated,
        capture_output=True,
        text=True,
    )
    mypy = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "mypy")],
        cwd=generated,
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert ruff.returncode == 0, ruff.stdout + ruff.stderr
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
    assert mypy.returncode == 0, mypy.stdout + mypy.stderr


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("9lives", "invalid destination name '9lives'"),
        ("bad name", "invalid destination name 'bad name'"),
        ("webhook", "a destination named 'webhook' is already installed"),
    ],
)
def test_bad_names_are_refused(name: str, message: str, tmp_path: Path) -> None:
    result = cli("new", "destination", name, "--directory", str(tmp_path))

    assert result.returncode == 2
    assert message in " ".join(result.stderr.split())
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_is_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")

    result = cli("new", "destination", "mine", "--directory", str(tmp_path))

    assert result.returncode == 2
    assert "already exists and is not empty" in " ".join(result.stderr.split())
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]

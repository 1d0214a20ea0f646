"""The project builds as a wheel (`pip wheel .`), the artefact a deployment role installs: it
carries every app with its migrations, templates and static files, and nothing else."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = [
    "iaas", "tenants", "hosts", "operations", "images", "network", "compute", "portal",
    "hypervisor",
]  # fmt: skip
DATA_DIRS = ("migrations", "templates", "static", "locale")


def _source_files(package: str) -> set[str]:
    """The files of `package` a deployment needs: its code, migrations, templates, statics."""
    files = set()
    for path in (ROOT / package).rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            relative = path.relative_to(ROOT).as_posix()
            if path.suffix == ".py" or any(part in DATA_DIRS for part in path.parts):
                files.add(relative)
    return files


def test_pip_wheel_builds_the_project_with_its_migrations_templates_and_statics(
    tmp_path: Path,
) -> None:
    # Built from a copy: setuptools writes build/ and *.egg-info beside the sources.
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "-q", "-w", str(tmp_path)],
        cwd=source, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    [wheel] = tmp_path.glob("andromede-*.whl")

    names = set(zipfile.ZipFile(wheel).namelist())

    expected = set().union(*(_source_files(package) for package in PACKAGES))
    assert expected - names == set()
    assert any("/migrations/0001_initial.py" in name for name in names)
    assert "portal/templates/portal/base.html" in names
    top_level = {name.split("/")[0] for name in names}
    assert {t for t in top_level if not t.endswith(".dist-info")} == set(PACKAGES)  # no tests

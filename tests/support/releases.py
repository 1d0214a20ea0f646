"""The releases operators run (pyproject.toml, `[tool.andromede] releases`; docs/upgrades.md),
and the previous release's source tree, taken out of git for the upgrade tests."""

from __future__ import annotations

import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Release:
    version: str
    commit: str


def previous_release() -> Release:
    """The newest release listed: the version this tree must upgrade from without downtime."""
    with (ROOT / "pyproject.toml").open("rb") as stream:
        listed = tomllib.load(stream)["tool"]["andromede"]["releases"]
    return Release(**listed[-1])


def git(*argv: str) -> str:
    """`git <argv>` in this checkout; its stdout. Fails loudly: a release commit that is not in
    this clone's history is an error of the release list, never a reason to skip."""
    done = subprocess.run(
        ["git", "-C", str(ROOT), *argv], capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"git {' '.join(argv)} failed: {done.stderr.strip()}")
    return done.stdout


def files_at(release: Release, under: str = "") -> list[str]:
    """The paths of the files the release's commit holds (under a folder, if given)."""
    return git("ls-tree", "-r", "--name-only", release.commit, "--", under or ".").split()


def extract(release: Release, into: Path) -> Path:
    """The release's source tree written into `into` (git archive: no .git, no work tree
    state); `into` is returned."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", release.commit],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, timeout=120, check=True)
    return into

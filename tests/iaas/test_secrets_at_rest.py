"""L3: the embedded default's secret key is created 0600 in a 0700 var/ (never readable by
other local accounts, not even for an instant)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path


def test_the_secret_key_and_var_are_private_from_the_start(tmp_path: Path):
    var = tmp_path / "var"
    env = {**os.environ, "ANDROMEDE_VAR_DIR": str(var), "DJANGO_SECRET_KEY": ""}
    env.pop("DJANGO_SECRET_KEY")
    script = "import os; os.umask(0o022); import iaas.settings as s; print(len(s.SECRET_KEY))"
    printed = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60,
        check=True, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert int(printed.stdout) > 40
    assert stat.S_IMODE(var.stat().st_mode) == 0o700
    assert stat.S_IMODE((var / "secret_key").stat().st_mode) == 0o600
    again = subprocess.run(
        [sys.executable, "-c", "import iaas.settings as s; print(s.SECRET_KEY)"], env=env,
        capture_output=True, text=True, timeout=60, check=True,
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert again.stdout.strip() == (var / "secret_key").read_text()

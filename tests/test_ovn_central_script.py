"""`scripts/ovn.sh central`: an installation's own OVN NB and SB databases and ovn-northd under
its var dir, without root or Open vSwitch (what API tests need: a real NB, never a fake), and
`stop` ending them. The host part (Open vSwitch, chassis, provider bridge, guard) is proven in
tests/hypervisor/test_run_ovn_script.py."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OVN_SH = ROOT / "scripts" / "ovn.sh"


def ovn_sh(var: Path, *args: str) -> str:
    done = subprocess.run(
        ["bash", str(OVN_SH), *args],
        env={**os.environ, "ANDROMEDE_VAR_DIR": str(var)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def ctl(tool: str, remote: str, *args: str) -> str:
    return subprocess.run(
        [tool, "--timeout=10", f"--db={remote}", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout


def test_central_runs_this_installations_nb_sb_and_northd_under_its_var_dir(
    tmp_path: Path,
) -> None:
    var = tmp_path / "var"
    try:
        out = ovn_sh(var, "central")
        nb, sb = f"unix:{var}/ovn/ovnnb_db.sock", f"unix:{var}/ovn/ovnsb_db.sock"
        assert f"export ANDROMEDE_OVN_NB_REMOTE={nb}\n" in out
        assert f"export ANDROMEDE_OVN_SB_REMOTE={sb}\n" in out
        # northd runs: a switch written to the NB becomes a datapath in the SB.
        ctl("ovn-nbctl", nb, "--wait=sb", "ls-add", "net-a")
        assert "net-a" in ctl("ovn-sbctl", sb, "--columns=external_ids", "list", "Datapath_Binding")
        pids = {p.name: p.read_text().strip() for p in (var / "ovn").glob("*.pid")}
        assert sorted(pids) == ["ovn-northd.pid", "ovnnb_db.pid", "ovnsb_db.pid"]
        assert ovn_sh(var, "central") == out  # a second start: same settings, nothing restarted
        assert pids == {p.name: p.read_text().strip() for p in (var / "ovn").glob("*.pid")}
    finally:
        ovn_sh(var, "stop")
    assert all(not Path(f"/proc/{pid}").exists() for pid in pids.values())
    assert (var / "ovn" / "ovnnb_db.db").exists()  # stop keeps the data; purge removes it

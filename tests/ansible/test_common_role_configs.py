"""The `common` role's firewall and SSH hardening, as the example inventory renders them: the
real role templates filled in by ansible-playbook with the role's defaults and each group's
variables (in Ansible's order of precedence: role defaults < group_vars/all < the group's),
then checked by the tools the role hands them to on a server: `nft -c` (a dry run that
changes nothing on this machine) and `sshd -T` (the effective sshd configuration).

Only rendering and checking here: the role itself is not applied, since the firewall and
sshd of the machine that runs the tests are not ours to change."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.support.sshd import keygen

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE = ROOT / "ansible"
EXAMPLE = ANSIBLE / "inventory" / "example" / "group_vars"
TEMPLATES = ANSIBLE / "roles" / "common" / "templates"
GROUPS = ("controlplane", "hypervisors")


def render_play(group: str, out: Path) -> str:
    defaults = ANSIBLE / "roles" / "common" / "defaults" / "main.yml"
    tasks = "\n".join(
        f"""    - name: Render {name}
      ansible.builtin.template:
        src: {TEMPLATES / name}.j2
        dest: {out / group / name}
        mode: "0600\""""
        for name in ("nftables.conf", "sshd-andromede.conf")
    )
    return f"""
- name: Render the common role's files for {group}
  hosts: localhost
  gather_facts: false
  vars_files: [{defaults}, {EXAMPLE / "all.yml"}, {EXAMPLE / group}.yml]
  tasks:
    - name: Directory
      ansible.builtin.file:
        path: {out / group}
        state: directory
        mode: "0700"
{tasks}
"""


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ansible-playbook run rendering both groups' files under the returned directory."""
    out = tmp_path_factory.mktemp("common-role")
    playbook = out / "render.yml"
    playbook.write_text("".join(render_play(group, out) for group in GROUPS))
    run = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-c", "local", "-i", "localhost,",
         str(playbook)],
        env=os.environ | {"ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    return out


def accepted(ruleset: str) -> set[tuple[str, str, int]]:
    """(source network, protocol, port) of each accept rule on a port."""
    rule = re.compile(r"^\s*ip6? saddr (\S+) (tcp|udp) dport (\d+) accept$", re.M)
    return {(net, proto, int(port)) for net, proto, port in rule.findall(ruleset)}


@pytest.mark.parametrize("group", GROUPS)
def test_the_firewall_is_a_ruleset_nft_accepts(rendered: Path, group: str) -> None:
    conf = rendered / group / "nftables.conf"
    check = subprocess.run(
        ["nft", "-c", "-f", str(conf)], capture_output=True, text=True, timeout=30, check=False
    )
    assert check.returncode == 0, check.stderr
    ruleset = conf.read_text()
    assert "policy drop;" in ruleset
    # Only its own table is replaced: libvirt's and OVN's rules live in other tables.
    assert "flush ruleset" not in ruleset
    assert re.findall(r"^table (\S+ \S+)", ruleset, re.M) == ["inet andromede"] * 2


def test_the_control_plane_serves_https_to_all_and_its_databases_to_the_private_network(
    rendered: Path,
) -> None:
    rules = accepted((rendered / "controlplane" / "nftables.conf").read_text())
    assert {("0.0.0.0/0", "tcp", 443), ("::/0", "tcp", 443)} <= rules
    private_only = {port: {net for net, _, p in rules if p == port} for port in (5432, 6379, 6642)}
    assert private_only == {port: {"192.0.2.0/24"} for port in (5432, 6379, 6642)}


def test_a_hypervisor_lets_in_only_ssh_and_geneve_from_the_private_network(
    rendered: Path,
) -> None:
    rules = accepted((rendered / "hypervisors" / "nftables.conf").read_text())
    assert rules == {("192.0.2.0/24", "tcp", 22), ("192.0.2.0/24", "udp", 6081)}


def test_sshd_takes_the_hardening_keys_only_and_root_by_key_only(
    rendered: Path, tmp_path: Path
) -> None:
    host_key = keygen(tmp_path / "host_key")
    main = tmp_path / "sshd_config"
    hardening = rendered / "hypervisors" / "sshd-andromede.conf"
    main.write_text(f"HostKey {host_key}\nInclude {hardening}\n")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd -T refuses to run without it
    effective = subprocess.run(
        ["/usr/sbin/sshd", "-T", "-f", str(main)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert effective.returncode == 0, effective.stderr
    settings = dict(line.split(" ", 1) for line in effective.stdout.splitlines() if " " in line)
    assert settings["passwordauthentication"] == "no"
    assert settings["kbdinteractiveauthentication"] == "no"
    assert settings["permitrootlogin"] == "without-password"
    assert settings["authenticationmethods"] == "publickey"
    assert settings["allowtcpforwarding"] == "no"
    assert settings["x11forwarding"] == "no"
    assert settings["maxauthtries"] == "3"

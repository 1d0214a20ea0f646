#!/usr/bin/env bash
# libvirtd.sh — make this machine a real libvirt + QEMU host (the hypervisor test lane's, and
# `make run`'s): applies Ansible's hypervisor role to this machine, `-c local`
# (ansible/hypervisors.yml with ansible/inventory/local; see ansible/roles/hypervisor/README.md).
#
# The role installs the missing Debian packages, creates the users and groups the QEMU driver
# wants, configures /etc/libvirt/qemu.conf (guests as libvirt-qemu:kvm, dynamic ownership,
# console logs through virtlogd) and virtlogd's limits, starts virtlogd and libvirtd (by hand,
# pid files under /run, where there is no systemd; systemd units where it runs), waits,
# bounded, until `virsh -c qemu:///system version` answers, and restarts a libvirtd started
# before its rbd storage backend was installed. Safe to run any number of times, also by two
# processes at once (a lock serialises them).
#
# Environment: ANDROMEDE_LIBVIRTD_TIMEOUT  seconds to wait for libvirtd (default 60).
# See shared/notes/hypervisor-lab.md for the measured facts behind each step.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

[[ $(id -u) -eq 0 ]] || die "scripts/libvirtd.sh must run as root (it installs packages and starts libvirtd)"
[[ -x $VENV/bin/ansible-playbook ]] || die "ansible-core is missing from .venv: run scripts/setup.sh"
# The role's apt tasks run under the system's Python, which needs python3-apt.
apt_ensure python3-apt

say "applying the hypervisor role to this machine (ansible/hypervisors.yml, -c local)"
export ANSIBLE_CONFIG="$ROOT/ansible/ansible.cfg"
# Only what changed (and failures) is printed, then the recap.
export ANSIBLE_DISPLAY_OK_HOSTS=false ANSIBLE_DISPLAY_SKIPPED_HOSTS=false
exec flock /run/andromede-hypervisor-role.lock \
    "$VENV/bin/ansible-playbook" -c local -i "$ROOT/ansible/inventory/local/hosts.yml" \
    "$ROOT/ansible/hypervisors.yml" \
    -e "hypervisor_libvirtd_timeout=${ANDROMEDE_LIBVIRTD_TIMEOUT:-60}"

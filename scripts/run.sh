#!/usr/bin/env bash
# run.sh — the embedded default: migrate, create the demo accounts, then run the API server,
# a Celery worker and Celery beat (and a private Redis when no broker is configured) in the
# foreground until Ctrl-C.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

# The local libvirtd is the embedded default's hypervisor: Ansible's hypervisor role applied
# to this machine, -c local (installs and starts what is missing; see ansible/README.md).
"$ROOT/scripts/libvirtd.sh"

# OVN: this installation's NB/SB databases and northd (under $VAR/ovn), its chassis on the
# machine's Open vSwitch, the provider bridge br-ex the machine reaches floating IPs on, and the
# host guard; exports ANDROMEDE_OVN_NB_REMOTE and the other ANDROMEDE_OVN_* settings.
# shellcheck source=scripts/ovn.sh
source "$ROOT/scripts/ovn.sh"
ovn_start
# Every tenant's default network: one range for all (OVN keeps tenants apart).
export ANDROMEDE_TENANT_DEFAULT_CIDR="${ANDROMEDE_TENANT_DEFAULT_CIDR:-192.0.2.0/24}"

# The control plane's SSH identity for reaching hosts (ANDROMEDE_SSH_PRIVATE_KEY).
ssh_key="${ANDROMEDE_SSH_PRIVATE_KEY:-$VAR/ssh/id_ed25519}"
if [[ ! -f $ssh_key ]]; then
    mkdir -p "$(dirname "$ssh_key")" && chmod 700 "$(dirname "$ssh_key")"
    ssh-keygen -q -t ed25519 -N '' -C "andromede-control-plane" -f "$ssh_key"
    say "generated the control plane's SSH key: $ssh_key.pub (install it on hypervisor hosts)"
fi

say "migrating the database"
"$VENV/bin/python" manage.py migrate --no-input -v0
"$VENV/bin/python" manage.py bootstrap_demo
"$VENV/bin/python" manage.py bootstrap_local_host
"$VENV/bin/python" manage.py bootstrap_volume_types
"$VENV/bin/python" manage.py bootstrap_local_network
# The demo's public image: the project's tiny test image (built once, then cached).
test_image="$("$ROOT/scripts/build-test-image.sh")"
"$VENV/bin/python" manage.py image_import andromede-test "$test_image" \
    --disk-format qcow2 --public --if-missing
# /metrics: gunicorn's workers share their request metrics through files here
# (prometheus_client's multiprocess mode, docs/decisions.md); emptied at every start, as that
# mode requires, before any process writes to it.
export PROMETHEUS_MULTIPROC_DIR="$RUN_DIR/prometheus"
rm -rf "$PROMETHEUS_MULTIPROC_DIR"
mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
exec "$VENV/bin/python" scripts/supervise.py

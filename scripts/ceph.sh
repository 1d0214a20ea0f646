#!/usr/bin/env bash
# ceph.sh up | down DIR — a throw-away single-node Ceph cluster for the RBD volume backend
# (1 mon, 1 mgr, 1 memstore OSD: RAM only, about 2 GiB; an initialised RBD pool `volumes`
# and a cephx user client.andromede with `profile rbd` on it), as the hypervisor test lane
# starts one per session (tests/support/ceph_lab.py, which does the work; measured facts in
# shared/notes/ceph-lab.md). Its state is in a fresh /var/tmp/andr-ceph-XXXX; its monitor
# listens on ports picked per run (never 3300/6789), so it never meets another cluster.
#
#   scripts/ceph.sh up         start it; prints `export CEPH_CONF=…` and how to stop it
#   scripts/ceph.sh down DIR   SIGKILL its daemons by pid, delete DIR
#
# Needs root and the packages of `scripts/setup.sh test`. Never for production data: memstore
# loses everything when the OSD stops.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

[[ $(id -u) -eq 0 ]] || die "scripts/ceph.sh must run as root (the daemons run as root)"
case "${1:-}" in
up) [[ $# -eq 1 ]] || die "usage: scripts/ceph.sh up | down DIR" ;;
down) [[ $# -eq 2 ]] || die "usage: scripts/ceph.sh up | down DIR" ;;
*) die "usage: scripts/ceph.sh up | down DIR" ;;
esac
command -v ceph-mon >/dev/null || die "Ceph is not installed: run scripts/setup.sh test"
cd "$ROOT"
PYTHONPATH="$ROOT" exec "$VENV/bin/python" -m tests.support.ceph_lab "$@"

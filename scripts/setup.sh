#!/usr/bin/env bash
# setup.sh run|test — install what this machine lacks: Debian packages and the virtualenv.
source "$(dirname "$0")/lib.sh"

mode="${1:-run}"
# libvirt-dev and pkg-config: libvirt-python (on PyPI a source package) builds against them;
# oathtool prints the demo accounts' TOTP codes (README); qemu-utils (qemu-img) inspects
# uploaded images, confined by util-linux's unshare, setpriv and prlimit (images/sandbox.py);
# Open vSwitch and OVN carry tenant networks (DESIGN §7, shared/notes/ovn-lab.md).
# test: the Ceph lab (scripts/ceph.sh: a throw-away single-node cluster for the RBD volume
# backend, shared/notes/ceph-lab.md), QEMU's rbd block driver (qemu-block-extra) and libvirt's
# rbd storage backend, which libvirtd loads only at start (scripts/libvirtd.sh restarts it).
# gettext: msgfmt compiles the portal's translations (portal/locale; the .mo files are not
# kept in the repository). test: Debian's chromium, which the browser tests drive with
# Playwright (tests/browser; Playwright's own browser download is never used), and curl to
# fetch axe-core from npm (scripts/axe-core.sh). test: prometheus for promtool, which checks
# and unit-tests the alert rules (ansible/roles/controlplane/files/prometheus); Debian ships
# no promtool alone. On a machine with systemd the package also starts a Prometheus server
# (port 9090): `systemctl disable --now prometheus` if you do not want it.
# test: rabbitmq-server, which the fault tests
# start as a private node of their own (tests/support/rabbitmq.py) to run beside Redis.
packages=(python3 python3-venv python3-dev gcc pkg-config libvirt-dev redis-server
    openssh-client ca-certificates oathtool qemu-utils util-linux
    openvswitch-switch ovn-central ovn-host gettext)
if [[ $mode == test ]]; then
    packages+=(postgresql postgresql-client openssh-server
        ceph-mon ceph-mgr ceph-osd ceph-common python3-rbd python3-rados
        qemu-block-extra libvirt-daemon-driver-storage-rbd chromium curl prometheus
        rabbitmq-server)
fi
apt_ensure "${packages[@]}"
venv_ensure
mkdir -p "$VAR" "$RUN_DIR"
# var/ holds the embedded default's database (sessions, user data), its secret key and the
# control plane's SSH key: readable by its owner only.
chmod 700 "$VAR"
(cd "$ROOT" && "$VENV/bin/python" manage.py compilemessages --locale fr --ignore '.venv/*' >/dev/null)
if [[ $mode == test ]]; then
    "$ROOT/scripts/axe-core.sh" >/dev/null
fi

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
packages=(python3 python3-venv python3-dev gcc pkg-config libvirt-dev redis-server
    openssh-client ca-certificates oathtool qemu-utils util-linux
    openvswitch-switch ovn-central ovn-host)
if [[ $mode == test ]]; then
    packages+=(postgresql postgresql-client openssh-server
        ceph-mon ceph-mgr ceph-osd ceph-common python3-rbd python3-rados
        qemu-block-extra libvirt-daemon-driver-storage-rbd)
fi
apt_ensure "${packages[@]}"
venv_ensure
mkdir -p "$VAR" "$RUN_DIR"
# var/ holds the embedded default's database (sessions, user data), its secret key and the
# control plane's SSH key: readable by its owner only.
chmod 700 "$VAR"

#!/usr/bin/env bash
# libvirtd.sh — make this machine a real libvirt + QEMU host for the hypervisor test lane.
#
# Installs the missing Debian packages, creates the users and groups the QEMU driver wants,
# configures /etc/libvirt/qemu.conf (guests run as the unprivileged libvirt-qemu user; libvirt
# hands each guest its disks, seed and console log while it runs: dynamic ownership), and
# starts virtlogd and libvirtd by hand (there is no systemd on these machines). Then waits,
# bounded, until `virsh -c qemu:///system version` answers. Safe to run any number of times.
#
# Environment: ANDROMEDE_LIBVIRTD_TIMEOUT  seconds to wait for libvirtd (default 60).
# See shared/notes/hypervisor-lab.md for the measured facts behind each step.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

URI="qemu:///system"
TIMEOUT="${ANDROMEDE_LIBVIRTD_TIMEOUT:-60}"
LOG_DIR=/var/log/libvirt
LIBVIRTD_LOG="$LOG_DIR/libvirtd.log"
VIRTLOGD_LOG="$LOG_DIR/virtlogd.log"
LIBVIRTD_PIDFILE=/run/libvirtd.pid
VIRTLOGD_PIDFILE=/run/virtlogd.pid
QEMU_CONF=/etc/libvirt/qemu.conf

[[ $(id -u) -eq 0 ]] || die "scripts/libvirtd.sh must run as root (it installs packages and starts libvirtd)"

# --- packages ---------------------------------------------------------------------------
# iptables must be present before libvirtd starts (networks and nwfilter use it): if it is
# installed now while a libvirtd runs, that libvirtd is restarted below.
had_iptables=0
command -v iptables >/dev/null 2>&1 && had_iptables=1
apt_ensure libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients libvirt-dev pkg-config \
    qemu-system-x86 qemu-utils dnsmasq-base iptables
restart_needed=0
if ((!had_iptables)); then
    restart_needed=1
fi

# --- users and groups --------------------------------------------------------------------
# Guests run as libvirt-qemu (group kvm), never root: a QEMU escape must not own the host.
# libvirt's dnsmasq drops privileges to libvirt-dnsmasq; the libvirt group owns the socket.
ensure_group() { getent group "$1" >/dev/null || groupadd -r "$1"; }
ensure_group kvm
ensure_group libvirt
ensure_group libvirt-qemu
if ! getent passwd libvirt-qemu >/dev/null; then
    useradd -r -g libvirt-qemu -G kvm -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu
fi
if ! getent passwd libvirt-dnsmasq >/dev/null; then
    useradd -r -U -d /var/lib/libvirt/dnsmasq -s /usr/sbin/nologin libvirt-dnsmasq
fi
# /dev/kvm belongs to group kvm, mode 0660, as Debian's udev rule makes it (no udev here):
# otherwise the guests' user cannot open it, and libvirt, finding KVM usable by root but not
# by that user, probes QEMU's capabilities again on every call (measured: a define took
# 30-55 s instead of 3 ms).
if [[ -c /dev/kvm ]]; then
    chgrp kvm /dev/kvm
    chmod 0660 /dev/kvm
fi
mkdir -p "$LOG_DIR" /run/libvirt /var/lib/libvirt/qemu /var/lib/libvirt/images \
    /var/lib/libvirt/dnsmasq /var/cache/libvirt/qemu

# --- /etc/libvirt/qemu.conf ----------------------------------------------------------------
# conf_set FILE KEY VALUE: make `KEY = VALUE` the only uncommented setting of KEY.
# Prints "changed" when it edited the file.
conf_set() {
    local file="$1" key="$2" value="$3" want current
    want="$key = $value"
    current="$(grep -E "^[[:space:]]*${key}[[:space:]]*=" "$file" || true)"
    [[ $current == "$want" ]] && return 0
    sed -i -E "/^[[:space:]]*${key}[[:space:]]*=/d" "$file"
    printf '%s\n' "$want" >> "$file"
    echo changed
}
# Debian ships qemu.conf in libvirt-daemon-system, which drags in polkitd and an init system
# integration we do not use; without the file libvirtd uses built-in defaults, so an empty
# file plus our three settings is the whole configuration. Every directory on the path to a
# guest's disk must be traversable by libvirt-qemu (0711 or 0755).
if [[ ! -f $QEMU_CONF ]]; then
    mkdir -p "$(dirname "$QEMU_CONF")"
    printf '# Written by Andromede scripts/libvirtd.sh; libvirt defaults apply otherwise.\n' \
        > "$QEMU_CONF"
fi
conf_changes="$(
    conf_set "$QEMU_CONF" user '"libvirt-qemu"'
    conf_set "$QEMU_CONF" group '"kvm"'
    conf_set "$QEMU_CONF" dynamic_ownership 1
    # Console logs (file chardevs) are written by virtlogd, which rotates them (below), never
    # by QEMU itself: a guest flooding its serial port cannot fill the host (review M12).
    conf_set "$QEMU_CONF" stdio_handler '"logd"'
)"
if [[ -n $conf_changes ]]; then
    say "configured $QEMU_CONF (guests as libvirt-qemu:kvm, dynamic_ownership = 1, logd)"
    restart_needed=1
fi
# virtlogd keeps each console log under 2 MiB, with 2 rotated files beside it
# (instance-<id>-console.log.0, .1), which an instance's delete removes with it.
VIRTLOGD_CONF=/etc/libvirt/virtlogd.conf
[[ -f $VIRTLOGD_CONF ]] || printf '# Written by Andromede scripts/libvirtd.sh.\n' > "$VIRTLOGD_CONF"
virtlogd_changes="$(
    conf_set "$VIRTLOGD_CONF" max_size 2097152
    conf_set "$VIRTLOGD_CONF" max_backups 2
)"

# --- daemons ---------------------------------------------------------------------------
# pid_alive PIDFILE NAME: the process in PIDFILE runs and is NAME.
pid_alive() {
    local pid
    [[ -s $1 ]] || return 1
    pid="$(cat "$1")"
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" == "$2" ]]
}

# stop_daemon PIDFILE NAME: stop the daemon of PIDFILE, waiting at most 10 s.
stop_daemon() {
    local pid
    pid_alive "$1" "$2" || return 0
    pid="$(cat "$1")"
    say "restarting $2 (pid $pid) to pick up its new configuration"
    kill "$pid"
    for _ in $(seq 100); do
        [[ -d /proc/$pid ]] || return 0
        sleep 0.1
    done
    die "$2 (pid $pid) did not stop within 10 s"
}

if [[ -n $virtlogd_changes ]] && pid_alive "$VIRTLOGD_PIDFILE" virtlogd; then
    stop_daemon "$VIRTLOGD_PIDFILE" virtlogd
fi
if ! pid_alive "$VIRTLOGD_PIDFILE" virtlogd; then
    say "starting virtlogd"
    LIBVIRT_LOG_OUTPUTS="3:file:$VIRTLOGD_LOG" virtlogd -d -p "$VIRTLOGD_PIDFILE"
fi

if ((restart_needed)); then
    stop_daemon "$LIBVIRTD_PIDFILE" libvirtd
fi
if ! pid_alive "$LIBVIRTD_PIDFILE" libvirtd; then
    say "starting libvirtd (log: $LIBVIRTD_LOG)"
    # Errors about D-Bus, udev DMI and dmidecode in its log are harmless here.
    LIBVIRT_LOG_OUTPUTS="3:file:$LIBVIRTD_LOG" libvirtd -d -p "$LIBVIRTD_PIDFILE"
fi

# --- wait until it answers -----------------------------------------------------------------
# wait_answers: return once libvirtd answers at $URI, or die after TIMEOUT seconds.
wait_answers() {
    local deadline=$((SECONDS + TIMEOUT))
    while :; do
        if timeout 5 virsh -c "$URI" version >/dev/null 2>&1; then
            return 0
        fi
        if ((SECONDS >= deadline)); then
            printf '\n--- last lines of %s ---\n' "$LIBVIRTD_LOG" >&2
            tail -n 20 "$LIBVIRTD_LOG" >&2 2>/dev/null || true
            die "libvirtd did not answer at $URI within ${TIMEOUT} s (see $LIBVIRTD_LOG)"
        fi
        sleep 0.2
    done
}
wait_answers

# --- the rbd storage backend ---------------------------------------------------------------
# libvirtd loads its storage backends at start only: one started before
# libvirt-daemon-driver-storage-rbd was installed (setup.sh test installs it) reports
# <pool type='rbd' supported='no'> until it restarts (shared/notes/ceph-lab.md). Restart it
# then, only if it is ours (started from our pid file): running guests are not affected, a
# client's connection is dropped and reopened (the driver reconnects).
rbd_backend_installed() {
    dpkg-query -W -f='${Status}' libvirt-daemon-driver-storage-rbd 2>/dev/null \
        | grep -q "install ok installed"
}
# rbd_answer: "yes" or "no", what libvirtd says of rbd pools; retried until it says one or
# the other (on a loaded machine virsh may time out: no answer is not a "no", and restarting
# a libvirtd that other clients use for a "no" it never said breaks them).
rbd_answer() {
    local deadline=$((SECONDS + TIMEOUT)) said
    while :; do
        said=$(timeout 20 virsh -c "$URI" pool-capabilities 2>/dev/null \
            | sed -n "s/.*<pool type='rbd' supported='\(yes\|no\)'>.*/\1/p")
        if [[ -n $said ]]; then
            echo "$said"
            return 0
        fi
        ((SECONDS >= deadline)) && die "libvirtd did not say whether it supports rbd pools"
        sleep 1
    done
}
if rbd_backend_installed; then
    answer=$(rbd_answer) || exit 1
    if [[ $answer == no ]] && pid_alive "$LIBVIRTD_PIDFILE" libvirtd; then
        say "libvirtd was started before its rbd storage backend was installed"
        stop_daemon "$LIBVIRTD_PIDFILE" libvirtd
        LIBVIRT_LOG_OUTPUTS="3:file:$LIBVIRTD_LOG" libvirtd -d -p "$LIBVIRTD_PIDFILE"
        wait_answers
        answer=$(rbd_answer) || exit 1
        [[ $answer == yes ]] || die "libvirtd still does not support rbd pools after a restart"
    fi
fi
exit 0

#!/usr/bin/env bash
# ovn.sh start|central|stop|purge|status|env — OVN for this installation on this one machine, no systemd.
#
#   start   central: the NB and SB ovsdb-servers and ovn-northd of this installation, their
#             databases, sockets, pid files and logs under $VAR/ovn (never /var/run/ovn, so
#             that another installation, the test suite, can run its own);
#           host: the machine's Open vSwitch (started if absent; userspace datapath `netdev`
#             by default: these kernels have no openvswitch module) and one ovn-controller whose chassis
#             is this installation's; the provider bridge br-ex mapped as physnet1, holding
#             the provider gateway address (203.0.113.129/25) so the machine reaches floating IPs;
#           guard: nftables tables `inet andromede` and `arp andromede`: the host kernel
#             neither hears nor speaks on guests' taps, and takes only answers to its own
#             connections from br-ex, where floating IPs arrive.
#           Then exports the control plane's settings (ANDROMEDE_OVN_*), see ovn_env.
#   central only the central part (NB, SB, northd): no root, no Open vSwitch; what API tests
#           need ("a real NB ovsdb-server, never a fake"). Prints the settings too.
#           watchdog: scripts/ovs_watchdog.py, detached, re-runs `ovn.sh start` when the
#             machine's ovsdb-server or ovs-vswitchd, or this installation's ovn-controller,
#             died without their --monitor restarting them (SIGKILL: the OOM killer, kill -9).
#   stop    stops the watchdog, then the daemons this installation started (ovn-controller,
#           northd, NB, SB).
#           Never the machine's Open vSwitch: it is machine-wide and carries every running
#           guest's traffic (libvirt's openvswitch virtualport uses it); stop it by hand with
#           /usr/share/openvswitch/scripts/ovs-ctl stop when nothing else needs it.
#   purge   stop, then remove what start configured: the bridges, this chassis's external_ids,
#           the nftables tables and $VAR/ovn (the databases). For tests and a clean slate.
#   status  what runs, and the settings.
#   env     the settings as `export` lines (also what `source scripts/ovn.sh; ovn_start` exports).
#
# Sourced by scripts/run.sh (`ovn_start`), or run. Every step is idempotent: start on a running
# installation changes nothing; every daemon or database call has a timeout.
#
# Environment (defaults are make run's; the test suite sets its own):
#   ANDROMEDE_VAR_DIR                 installation dir ($VAR): OVN's files go to $VAR/ovn
#   ANDROMEDE_OVN_CHASSIS             chassis name (default andromede-<short hostname>)
#   ANDROMEDE_OVN_INTEGRATION_BRIDGE  default br-int (guests' taps are added to it by libvirt)
#   ANDROMEDE_OVN_PROVIDER_BRIDGE     default br-ex
#   ANDROMEDE_OVN_PROVIDER_NETWORK    OVN network_name of the localnet ports (default physnet1)
#   ANDROMEDE_OVN_PROVIDER_CIDR       default 203.0.113.128/25 (the machine's registries sit at 203.0.113.80)
#   ANDROMEDE_OVN_PROVIDER_GATEWAY    the machine's address on br-ex (default 203.0.113.129)
#   ANDROMEDE_OVN_ENCAP_IP            Geneve tunnel endpoint (default 127.0.0.1: one host)
#   ANDROMEDE_OVS_DATAPATH_TYPE       netdev (default: these kernels have no openvswitch
#                                     module) or system (the kernel datapath, production hosts)
#   ANDROMEDE_TAP_PREFIX              name prefix of guests' taps (default tap)
#   ANDROMEDE_NFT_TABLE               nftables table name (default andromede)
#   OVS_RUNDIR, OVS_DBDIR, OVS_LOGDIR, OVS_SYSCONFDIR  Open vSwitch's own variables: unset,
#                                     the machine's OVS (/run/openvswitch); a test sets them to
#                                     run a private OVS (ovs-ctl and ovs-vsctl read them too).
# See shared/notes/ovn-lab.md for the measured facts behind each step.
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

OVN_DIR="$VAR/ovn"
OVN_NB_SOCK="$OVN_DIR/ovnnb_db.sock"
OVN_SB_SOCK="$OVN_DIR/ovnsb_db.sock"
OVN_NB_REMOTE="unix:$OVN_NB_SOCK"
OVN_SB_REMOTE="unix:$OVN_SB_SOCK"
OVN_CHASSIS="${ANDROMEDE_OVN_CHASSIS:-andromede-${HOSTNAME%%.*}}"
OVN_INT_BRIDGE="${ANDROMEDE_OVN_INTEGRATION_BRIDGE:-br-int}"
OVN_EXT_BRIDGE="${ANDROMEDE_OVN_PROVIDER_BRIDGE:-br-ex}"
OVN_PHYSNET="${ANDROMEDE_OVN_PROVIDER_NETWORK:-physnet1}"
OVN_PROVIDER_CIDR="${ANDROMEDE_OVN_PROVIDER_CIDR:-203.0.113.128/25}"
OVN_PROVIDER_GATEWAY="${ANDROMEDE_OVN_PROVIDER_GATEWAY:-203.0.113.129}"
OVN_ENCAP_IP="${ANDROMEDE_OVN_ENCAP_IP:-127.0.0.1}"
OVS_DATAPATH_TYPE="${ANDROMEDE_OVS_DATAPATH_TYPE:-netdev}"
OVN_TAP_PREFIX="${ANDROMEDE_TAP_PREFIX:-tap}"
OVN_NFT_TABLE="${ANDROMEDE_NFT_TABLE:-andromede}"
OVS_CTL=/usr/share/openvswitch/scripts/ovs-ctl
OVS_DB_SOCK="${OVS_RUNDIR:-/var/run/openvswitch}/db.sock"
# Seconds: one database or daemon call; and a daemon coming up or going away.
OVN_CALL_TIMEOUT=10
OVN_WAIT_TIMEOUT=30

vsctl() { ovs-vsctl --timeout="$OVN_CALL_TIMEOUT" --db="unix:$OVS_DB_SOCK" "$@"; }
nbctl() { ovn-nbctl --timeout="$OVN_CALL_TIMEOUT" --db="$OVN_NB_REMOTE" "$@"; }
sbctl() { ovn-sbctl --timeout="$OVN_CALL_TIMEOUT" --db="$OVN_SB_REMOTE" "$@"; }
# appctl CTL-SOCKET COMMAND...: a daemon's control socket, bounded (-T seconds).
appctl() { ovs-appctl -T "$OVN_CALL_TIMEOUT" -t "$@"; }

# wait_for SECONDS WHAT COMMAND...: run COMMAND every 0.1 s until it succeeds; die after SECONDS.
wait_for() {
    local seconds="$1" what="$2" deadline
    shift 2
    deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "$what: not within ${seconds} s"
        sleep 0.1
    done
}

# daemon_pid NAME: the pid in NAME's pid file (in $OVN_DIR) if that process runs.
daemon_pid() {
    local pid
    pid="$(cat "$OVN_DIR/$1.pid" 2>/dev/null)" || return 1
    [[ $pid =~ ^[0-9]+$ && -d /proc/$pid ]] || return 1
    echo "$pid"
}

# daemon_ctl NAME PID: NAME's control socket. ovn-controller has no --unixctl option: it puts
# its socket in $OVN_RUNDIR (which we set to $OVN_DIR), named after its pid.
daemon_ctl() {
    if [[ $1 == ovn-controller ]]; then
        echo "$OVN_DIR/ovn-controller.$2.ctl"
    else
        echo "$OVN_DIR/$1.ctl"
    fi
}

# daemon_alive NAME: the daemon NAME runs and answers on its control socket. A stale pid file
# (a crash, a reboot) counts as not running.
daemon_alive() {
    local pid
    pid="$(daemon_pid "$1")" || return 1
    appctl "$(daemon_ctl "$1" "$pid")" version >/dev/null 2>&1
}

# daemon_args NAME: the options every daemon of ours gets: detached, restarted by its monitor
# if it crashes (the lab saw ovs-vswitchd 3.1 abort once), pid file and log under $OVN_DIR.
# (Callers append the daemon's stderr to its log too: what it says before it opens the log,
# such as a refused option, lands there instead of in make run's output.)
daemon_args() {
    printf '%s\n' --detach --monitor "--pidfile=$OVN_DIR/$1.pid" \
        "--log-file=$OVN_DIR/$1.log" -vconsole:off -vfile:info
    [[ $1 == ovn-controller ]] || printf '%s\n' "--unixctl=$OVN_DIR/$1.ctl"
}

# ---- central -------------------------------------------------------------------------------

# ovn_db_start nb|sb: the NB or SB ovsdb-server, its database created (or converted to the
# installed schema) first.
ovn_db_start() {
    local kind="$1" name="ovn${1}_db" schema db sock
    schema=/usr/share/ovn/ovn-$kind.ovsschema
    db="$OVN_DIR/$name.db"
    sock="$OVN_DIR/$name.sock"
    if daemon_alive "$name"; then
        return 0
    fi
    if [[ ! -e $db ]]; then
        ovsdb-tool create "$db" "$schema"
    elif [[ $(ovsdb-tool needs-conversion "$db" "$schema") == yes ]]; then
        say "converting $db to the installed OVN schema"
        ovsdb-tool convert "$db" "$schema"
    fi
    local model=OVN_Northbound global=NB_Global
    if [[ $kind == sb ]]; then
        model=OVN_Southbound global=SB_Global
    fi
    say "starting the OVN ${kind^^} database ($sock)"
    local args
    mapfile -t args < <(daemon_args "$name")
    # The connections and SSL rows are read from the database itself, as ovn-ctl does: TLS
    # (production) is then a database setting (ovn-nbctl set-connection/set-ssl), not an edit.
    ovsdb-server "${args[@]}" "--remote=punix:$sock" "--remote=db:$model,$global,connections" \
        "--private-key=db:$model,SSL,private_key" "--certificate=db:$model,SSL,certificate" \
        "--ca-cert=db:$model,SSL,ca_cert" "--ssl-protocols=db:$model,SSL,ssl_protocols" \
        "--ssl-ciphers=db:$model,SSL,ssl_ciphers" "$db" 2>>"$OVN_DIR/$name.log"
    wait_for "$OVN_WAIT_TIMEOUT" "the OVN ${kind^^} database at $sock (log: $OVN_DIR/$name.log)" \
        ovsdb-client --timeout="$OVN_CALL_TIMEOUT" list-dbs "unix:$sock"
}

ovn_central_start() {
    mkdir -p "$OVN_DIR"
    chmod 700 "$OVN_DIR" # the NB socket is the whole network's control: owner only
    ovn_db_start nb
    ovn_db_start sb
    # The NB_Global and SB_Global rows (ovn-ctl does the same); no-ops once they exist.
    nbctl --no-wait init
    sbctl init
    if ! daemon_alive ovn-northd; then
        say "starting ovn-northd"
        local args
        mapfile -t args < <(daemon_args ovn-northd)
        ovn-northd "${args[@]}" "--ovnnb-db=$OVN_NB_REMOTE" "--ovnsb-db=$OVN_SB_REMOTE" \
            2>>"$OVN_DIR/ovn-northd.log"
        wait_for "$OVN_WAIT_TIMEOUT" "ovn-northd (log: $OVN_DIR/ovn-northd.log)" \
            daemon_alive ovn-northd
    fi
}

# ---- host ----------------------------------------------------------------------------------

# The machine's Open vSwitch: started if absent, then left running (see `stop`).
ovs_ensure() {
    if vsctl --no-wait get Open_vSwitch . _uuid >/dev/null 2>&1 &&
        ovs-appctl -T "$OVN_CALL_TIMEOUT" -t ovs-vswitchd version >/dev/null 2>&1; then
        return 0
    fi
    say "starting Open vSwitch (${OVS_RUNDIR:-/var/run/openvswitch})"
    mkdir -p "${OVS_SYSCONFDIR:-/etc}/openvswitch" # where ovs-ctl keeps the system id
    # ovs-ctl starts only what is missing (ovsdb-server, ovs-vswitchd), each under a monitor
    # that restarts it after a crash. Its "ulimit: error setting limit" line is harmless here.
    timeout 120 "$OVS_CTL" start --system-id=random --no-full-hostname >&2 ||
        die "Open vSwitch did not start; see ${OVS_LOGDIR:-/var/log/openvswitch}/ovs-vswitchd.log"
}

# external_ids of the machine's Open_vSwitch row for this chassis. The keys carry the chassis
# name (ovn-remote-<chassis>, ...): ovn-controller -n <chassis> reads those before the plain
# ones, so a second installation's chassis on the same ovs-vswitchd cannot overwrite ours.
ovn_chassis_ids() {
    local c="$OVN_CHASSIS"
    printf '%s\n' \
        "external_ids:ovn-remote-$c=\"$OVN_SB_REMOTE\"" \
        "external_ids:ovn-encap-type-$c=geneve" \
        "external_ids:ovn-encap-ip-$c=\"$OVN_ENCAP_IP\"" \
        "external_ids:ovn-bridge-$c=\"$OVN_INT_BRIDGE\"" \
        "external_ids:ovn-bridge-datapath-type-$c=$OVS_DATAPATH_TYPE" \
        "external_ids:ovn-bridge-mappings-$c=\"$OVN_PHYSNET:$OVN_EXT_BRIDGE\"" \
        "external_ids:ovn-cms-options-$c=enable-chassis-as-gw"
}

# The provider bridge: a netdev bridge whose internal port (a tap the kernel sees) holds the
# gateway address; OVN's localnet ports reach it through the patch port ovn-controller adds.
provider_bridge_ensure() {
    local prefix="${OVN_PROVIDER_CIDR#*/}" dev="$OVN_EXT_BRIDGE"
    vsctl --may-exist add-br "$dev" -- set Bridge "$dev" "datapath_type=$OVS_DATAPATH_TYPE"
    wait_for "$OVN_WAIT_TIMEOUT" "the device $dev" ip link show dev "$dev"
    # No IPv6 on the machine's side of the provider network: nothing to reach it by.
    sysctl -q -w "net.ipv6.conf.$dev.disable_ipv6=1"
    # The kernel must write full checksums into what it sends through OVS's userspace path:
    # a partial (offloaded) TCP checksum is forwarded as is and dropped by the receiver (lab
    # note). OVS's taps come up with TX checksumming off; this keeps it so whatever the kernel
    # or OVS version.
    ethtool -K "$dev" tx off >/dev/null 2>&1 || true
    ip addr replace "$OVN_PROVIDER_GATEWAY/$prefix" dev "$dev"
    ip link set dev "$dev" up
}

ovn_host_start() {
    ovs_ensure
    local ids
    mapfile -t ids < <(ovn_chassis_ids)
    vsctl set Open_vSwitch . "${ids[@]}"
    provider_bridge_ensure
    if ! daemon_alive ovn-controller; then
        say "starting ovn-controller (chassis $OVN_CHASSIS)"
        local args
        mapfile -t args < <(daemon_args ovn-controller)
        # OVS_RUNDIR stays Open vSwitch's: ovn-controller reaches br-int's OpenFlow socket there.
        OVN_RUNDIR="$OVN_DIR" ovn-controller "${args[@]}" -n "$OVN_CHASSIS" "unix:$OVS_DB_SOCK" \
            2>>"$OVN_DIR/ovn-controller.log"
    fi
    # Ready when the chassis is in the SB and the integration bridge exists (ovn-controller
    # creates it): libvirt cannot attach a guest before that.
    wait_for "$OVN_WAIT_TIMEOUT" \
        "chassis $OVN_CHASSIS in the SB (log: $OVN_DIR/ovn-controller.log)" chassis_registered
    wait_for "$OVN_WAIT_TIMEOUT" "the bridge $OVN_INT_BRIDGE" vsctl br-exists "$OVN_INT_BRIDGE"
    # The integration bridge's own internal port is never used by OVN: keep it down and quiet.
    sysctl -q -w "net.ipv6.conf.$OVN_INT_BRIDGE.disable_ipv6=1" 2>/dev/null || true
}

chassis_registered() {
    [[ -n $(sbctl --bare --columns=name find Chassis "name=$OVN_CHASSIS") ]]
}

# ---- guard ---------------------------------------------------------------------------------

# On the userspace datapath OVS reads a guest's tap through AF_PACKET, so the host kernel
# receives every guest frame too: a guest could reach host services at any host address (via
# the tap's MAC) or the tap's IPv6 link-local. The tables below drop, by interface name:
# - everything the kernel would take in from a tap (IPv4, IPv6, ARP), or route from it;
# - everything the kernel would send out of a tap itself (IPv6 router solicitations, DAD,
#   MLD, ARP): OVS's own frames to the guest go through AF_PACKET, which these hooks never
#   see, so guest traffic is untouched;
# - from the provider bridge (floating IPs, SNAT addresses), anything but answers to the
#   machine's own connections (ssh to a floating IP): 22, 5432, 6379, 16509, 6641, 6642 and
#   all the rest stay closed to guests; nor does the machine route anything from it.
# Why no per-tap disable_ipv6 (libvirt hook): a NIC attached live runs no hook, and a new
# hook needs a libvirtd restart; these rules hold for every tap of the prefix, before it exists.
ovn_guard_rules() {
    local t="$OVN_NFT_TABLE" tap="$OVN_TAP_PREFIX*" ex="$OVN_EXT_BRIDGE" int="$OVN_INT_BRIDGE"
    cat <<NFT
table inet $t
delete table inet $t
table inet $t {
    chain input {
        type filter hook input priority filter - 10; policy accept;
        iifname "$tap" counter drop comment "guests reach nothing of the host"
        iifname "$int" counter drop comment "OVN never sends to the host here"
        iifname "$ex" ct state established,related accept
        iifname "$ex" counter drop comment "only answers from the provider network"
    }
    chain forward {
        type filter hook forward priority filter - 10; policy accept;
        iifname "$tap" counter drop
        oifname "$tap" counter drop
        iifname "$int" counter drop
        iifname "$ex" counter drop comment "the machine routes nothing for guests"
    }
    chain output {
        type filter hook output priority filter - 10; policy accept;
        oifname "$tap" counter drop comment "the host says nothing on taps"
        oifname "$int" counter drop
    }
}
table arp $t
delete table arp $t
table arp $t {
    chain input {
        type filter hook input priority filter; policy accept;
        iifname "$tap" counter drop
        iifname "$int" counter drop
    }
    chain output {
        type filter hook output priority filter; policy accept;
        oifname "$tap" counter drop
        oifname "$int" counter drop
    }
}
NFT
}

ovn_guard_apply() {
    apt_ensure nftables ethtool
    # One nft transaction: the old tables are replaced atomically, never absent in between.
    ovn_guard_rules | timeout "$OVN_CALL_TIMEOUT" nft -f -
}

ovn_guard_remove() {
    local family
    for family in inet arp; do
        timeout "$OVN_CALL_TIMEOUT" nft delete table "$family" "$OVN_NFT_TABLE" 2>/dev/null || true
    done
}

# ---- watchdog ------------------------------------------------------------------------------

OVN_WATCHDOG_PID="$OVN_DIR/ovs-watchdog.pid"

watchdog_pid() {
    local pid
    pid="$(cat "$OVN_WATCHDOG_PID" 2>/dev/null)" || return 1
    [[ $pid =~ ^[0-9]+$ ]] && grep -qa ovs_watchdog "/proc/$pid/cmdline" 2>/dev/null || return 1
    echo "$pid"
}

# Production hosts with systemd restart these daemons with Restart=; here (no systemd) OVS's
# --monitor restarts them after a crash signal but not after SIGKILL, which would leave every
# guest of the machine cut off. The restart is this script's own idempotent start (it starts
# only what is missing; measured 3.4 s from the kill to the machine reaching a floating IP
# again): the watchdog inherits this environment (ANDROMEDE_*, OVS_*), so it is this start.
ovs_watchdog_start() {
    watchdog_pid >/dev/null && return 0
    local rundir="${OVS_RUNDIR:-/var/run/openvswitch}" restart
    restart="$(printf '%q ' bash "$ROOT/scripts/ovn.sh" start)"
    say "starting the Open vSwitch watchdog (log: $OVN_DIR/ovs-watchdog.log)"
    setsid python3 "$ROOT/scripts/ovs_watchdog.py" --pidfile "$OVN_WATCHDOG_PID" \
        --restart-timeout 120 \
        --watch "$rundir/ovsdb-server.pid" ovsdb-server "$restart" \
        --watch "$rundir/ovs-vswitchd.pid" ovs-vswitchd "$restart" \
        --watch "$OVN_DIR/ovn-controller.pid" ovn-controller "$restart" \
        </dev/null >>"$OVN_DIR/ovs-watchdog.log" 2>&1 &
    wait_for "$OVN_WAIT_TIMEOUT" "the watchdog (log: $OVN_DIR/ovs-watchdog.log)" watchdog_pid
}

ovs_watchdog_stop() {
    local pid deadline
    pid="$(watchdog_pid)" || return 0
    say "stopping the Open vSwitch watchdog (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 10))
    while [[ -d /proc/$pid ]] && ((SECONDS < deadline)); do sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$OVN_WATCHDOG_PID"
}

# ---- start / stop --------------------------------------------------------------------------

# ovn_env: the control plane's settings, as export lines.
ovn_env() {
    local name value
    for name in NB_REMOTE SB_REMOTE CHASSIS INTEGRATION_BRIDGE PROVIDER_BRIDGE PROVIDER_NETWORK \
        PROVIDER_CIDR PROVIDER_GATEWAY; do
        case $name in
            NB_REMOTE) value="$OVN_NB_REMOTE" ;;
            SB_REMOTE) value="$OVN_SB_REMOTE" ;;
            CHASSIS) value="$OVN_CHASSIS" ;;
            INTEGRATION_BRIDGE) value="$OVN_INT_BRIDGE" ;;
            PROVIDER_BRIDGE) value="$OVN_EXT_BRIDGE" ;;
            PROVIDER_NETWORK) value="$OVN_PHYSNET" ;;
            PROVIDER_CIDR) value="$OVN_PROVIDER_CIDR" ;;
            PROVIDER_GATEWAY) value="$OVN_PROVIDER_GATEWAY" ;;
        esac
        printf 'export ANDROMEDE_OVN_%s=%q\n' "$name" "$value"
    done
    # The host's datapath: the control plane gives guests <host csum='off'/> on netdev only.
    printf 'export ANDROMEDE_OVS_DATAPATH_TYPE=%q\n' "$OVS_DATAPATH_TYPE"
    # The same, under the names the control plane's settings read (iaas/settings.py).
    printf 'export ANDROMEDE_OVN_GATEWAY_CHASSIS=%q\n' "$OVN_CHASSIS"
    printf 'export ANDROMEDE_LOCAL_OVS_BRIDGE=%q\n' "$OVN_INT_BRIDGE"
    printf 'export ANDROMEDE_LOCAL_OVS_DATAPATH=%q\n' "$OVS_DATAPATH_TYPE"
}

# ovn_start: everything above, then the settings exported into the caller's environment.
ovn_start() {
    [[ $(id -u) -eq 0 ]] || die "scripts/ovn.sh must run as root (Open vSwitch, nftables)"
    ovn_guard_apply # first: no window where a guest's tap exists unguarded
    ovn_central_start
    ovn_host_start
    ovs_watchdog_start
    eval "$(ovn_env)"
    say "OVN ready: NB $OVN_NB_REMOTE, chassis $OVN_CHASSIS, provider $OVN_EXT_BRIDGE" \
        "$OVN_PROVIDER_GATEWAY (${OVN_PROVIDER_CIDR})"
}

# daemon_stop NAME: ask the daemon to exit, then TERM, then KILL; bounded. Its monitor
# exits with it (a monitor restarts a daemon only after a crash signal).
daemon_stop() {
    local name="$1" pid deadline
    pid="$(daemon_pid "$name")" || {
        rm -f "$OVN_DIR/$name.pid"
        return 0
    }
    say "stopping $name (pid $pid)"
    appctl "$(daemon_ctl "$name" "$pid")" exit >/dev/null 2>&1 || true
    deadline=$((SECONDS + 10))
    while [[ -d /proc/$pid ]] && ((SECONDS < deadline)); do sleep 0.1; done
    if [[ -d /proc/$pid ]]; then
        kill -TERM "$pid" 2>/dev/null || true
        sleep 1
        kill -KILL "$pid" 2>/dev/null || true
    fi
}

ovn_stop() {
    ovs_watchdog_stop # first: it would start again what is stopped below
    # The controller first, while the SB still answers: a clean exit removes its chassis.
    daemon_stop ovn-controller
    daemon_stop ovn-northd
    daemon_stop ovnnb_db
    daemon_stop ovnsb_db
}

ovn_purge() {
    ovn_stop
    if vsctl --no-wait get Open_vSwitch . _uuid >/dev/null 2>&1; then
        local c="$OVN_CHASSIS" key
        for key in ovn-remote ovn-encap-type ovn-encap-ip ovn-bridge ovn-bridge-datapath-type \
            ovn-bridge-mappings ovn-cms-options; do
            vsctl remove Open_vSwitch . external_ids "$key-$c"
        done
        vsctl --if-exists del-br "$OVN_EXT_BRIDGE" -- --if-exists del-br "$OVN_INT_BRIDGE"
    fi
    ovn_guard_remove
    rm -rf "$OVN_DIR"
}

ovn_status() {
    local name
    for name in ovnnb_db ovnsb_db ovn-northd ovn-controller; do
        if daemon_alive "$name"; then
            printf '%-15s running (pid %s)\n' "$name" "$(cat "$OVN_DIR/$name.pid")"
        else
            printf '%-15s stopped\n' "$name"
        fi
    done
    if watchdog_pid >/dev/null; then
        printf '%-15s running (pid %s)\n' ovs-watchdog "$(watchdog_pid)"
    else
        printf '%-15s stopped\n' ovs-watchdog
    fi
    ovn_env
}

# Run as a command (not sourced): dispatch.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    case "${1:-}" in
        start) ovn_start && ovn_env ;;
        central) ovn_central_start && ovn_env ;;
        stop) ovn_stop ;;
        purge) ovn_purge ;;
        status) ovn_status ;;
        env) ovn_env ;;
        *) die "usage: scripts/ovn.sh start|central|stop|purge|status|env" ;;
    esac
fi

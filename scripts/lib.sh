# Shared shell helpers for the setup, run and test scripts. Source it; do not run it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
VAR="${ANDROMEDE_VAR_DIR:-$ROOT/var}"
RUN_DIR="$VAR/run"

say() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31mERROR:\033[0m %s\n' "$*" >&2; exit 1; }

# apt_ensure PKG...: install the Debian packages that are not installed yet.
apt_ensure() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        [[ $(id -u) -eq 0 ]] || die "missing Debian packages (${missing[*]}); run as root or install them"
        say "installing Debian packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        # policy-rc.d 101: packages must not start services themselves; our scripts start
        # exactly what they need (there is no systemd on these machines).
        local policy=/usr/sbin/policy-rc.d created_policy=0
        if [[ ! -e $policy ]]; then
            printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created_policy=1
        fi
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        ((created_policy)) && rm -f "$policy"
    fi
    return 0
}

# venv_ensure [dev]: a virtualenv with exactly the pinned packages of requirements.lock.
venv_ensure() {
    local stamp="$VENV/.requirements.sha256" want
    want="$(sha256sum "$ROOT/requirements.lock" | cut -d' ' -f1)"
    if [[ -x $VENV/bin/python && -f $stamp && $(cat "$stamp") == "$want" ]]; then
        return 0
    fi
    if [[ ! -x $VENV/bin/python ]]; then
        say "creating the virtualenv in .venv"
        /usr/bin/python3 -m venv "$VENV"
    fi
    say "installing the pinned Python packages (requirements.lock)"
    # (grep drops a harmless warning some machines' pip configuration prints per package)
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/requirements.lock" 2>&1 \
        | { grep -v "is ignored: it is neither a file nor a directory" || true; }
    echo "$want" > "$stamp"
}

# redis_ping URL: true when a Redis server answers at URL (redis://, redis+socket://).
redis_ping() {
    "$VENV/bin/python" - "$1" <<'PY' 2>/dev/null
import sys, redis
url = sys.argv[1].replace("redis+socket://", "unix://")
redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2).ping()
PY
}

# private_redis_start NAME: a Redis only for Andromède, on the unix socket var/run/NAME.sock,
# keeping nothing on disk; `make test` runs its own (redis-test), apart from the one
# `make run` starts (redis.sock), so that stopping one never stops the other's broker.
private_redis_start() {
    local name="$1" socket="$RUN_DIR/$1.sock"
    mkdir -p "$RUN_DIR"
    if redis_ping "redis+socket://$socket"; then
        return 0
    fi
    say "starting a private Redis on $socket"
    redis-server --port 0 --unixsocket "$socket" --unixsocketperm 700 \
        --save '' --appendonly no --daemonize yes --pidfile "$RUN_DIR/$name.pid" \
        --logfile "$VAR/$name.log" --dir "$RUN_DIR"
    for _ in $(seq 50); do
        redis_ping "redis+socket://$socket" && return 0
        sleep 0.1
    done
    die "the private Redis did not start; see $VAR/$name.log"
}

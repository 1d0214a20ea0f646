#!/usr/bin/env bash
# test.sh [--lint-only] — lint and type-check, then run the whole suite with pytest.
# Uses DATABASE_URL / CELERY_BROKER_URL when they are set and reachable; otherwise starts
# PostgreSQL (the Debian cluster) and a private Redis itself.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

lint() {
    say "lint: ruff, ruff format, mypy, ansible-lint, manage.py check, makemigrations --check"
    "$VENV/bin/ruff" check .
    "$VENV/bin/ruff" format --check .
    "$VENV/bin/mypy" .
    # ansible/: the production profile, offline (no Galaxy); it runs ansible-playbook
    # --syntax-check on the playbooks, which it finds on PATH.
    PATH="$VENV/bin:$PATH" "$VENV/bin/ansible-lint" -q --offline --profile production ansible/
    "$VENV/bin/python" manage.py check --fail-level WARNING
    "$VENV/bin/python" manage.py makemigrations --check --dry-run
}

minutes() { printf '%d min %02d s' $(($1 / 60)) $(($1 % 60)); }

pg_reachable() {
    "$VENV/bin/python" - "$1" <<'PY' 2>/dev/null
import sys, psycopg
psycopg.connect(sys.argv[1], connect_timeout=3).close()
PY
}

# The Debian cluster (installed by setup.sh), started if it is not running, with a role and
# database for Andromède's tests.
postgres_ensure() {
    if [[ -n ${DATABASE_URL:-} ]]; then
        if pg_reachable "$DATABASE_URL"; then
            say "using PostgreSQL at DATABASE_URL"
            return 0
        fi
        say "DATABASE_URL is not reachable; starting the local PostgreSQL instead"
    fi
    local version
    version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)"
    if [[ -z $version ]]; then
        version="$(ls /usr/lib/postgresql | sort -V | tail -1)"
        say "creating the PostgreSQL $version cluster"
        pg_createcluster "$version" main >/dev/null
    fi
    if ! pg_lsclusters -h | awk -v v="$version" '$1==v && $2=="main"' | grep -q online; then
        say "starting PostgreSQL $version"
        pg_ctlcluster --skip-systemctl-redirect "$version" main start
    fi
    local port
    port="$(pg_lsclusters -h | awk -v v="$version" '$1==v && $2=="main" {print $3}')"
    # CREATEROLE: the database-role tests (tests/iaas/test_audit_db_roles.py) make throwaway
    # runtime roles, as an operator makes the application's (docs/operations.md, Audit chain).
    runuser -u postgres -- psql -q -p "$port" -v ON_ERROR_STOP=1 <<'SQL' >/dev/null
SELECT 'CREATE ROLE andromede LOGIN CREATEDB CREATEROLE PASSWORD ''andromede'''
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'andromede') \gexec
ALTER ROLE andromede CREATEROLE;
SELECT 'CREATE DATABASE andromede OWNER andromede'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'andromede') \gexec
SQL
    export DATABASE_URL="postgresql://andromede:andromede@127.0.0.1:$port/andromede"
    pg_reachable "$DATABASE_URL" || die "PostgreSQL is running but $DATABASE_URL does not answer"
    say "using PostgreSQL $version on port $port"
}

redis_ensure() {
    if [[ -n ${CELERY_BROKER_URL:-} ]]; then
        if redis_ping "$CELERY_BROKER_URL"; then
            say "using the broker at CELERY_BROKER_URL"
            return 0
        fi
        say "CELERY_BROKER_URL is not reachable; starting a private Redis instead"
    fi
    private_redis_start redis-test
    export CELERY_BROKER_URL="redis+socket://$RUN_DIR/redis-test.sock"
}

# The URL of a database named like DATABASE_URL's plus "_hv": the hypervisor lane's own (its
# test database is test_<name>_hv; Django creates it, the base database need not exist).
hv_database_url() {
    "$VENV/bin/python" - "$DATABASE_URL" <<'PY'
import sys
from urllib.parse import urlsplit, urlunsplit
url = urlsplit(sys.argv[1])
print(urlunsplit(url._replace(path=url.path.rstrip("/") + "_hv")))
PY
}

# run_lane NAME NICENESS PYTEST-ARGS...: one pytest process, its minutes printed at its end.
run_lane() {
    local name="$1" niceness="$2" started=$SECONDS status=0
    shift 2
    PYTHONPATH="$ROOT" ANDROMEDE_FORBID_SKIPS=1 nice -n "$niceness" "$VENV/bin/pytest" -p no:cacheprovider \
        -p tests.support.lanes --durations=10 "$@" || status=$?
    say "the $name lane took $(minutes $((SECONDS - started))) (exit $status)"
    return "$status"
}

started=$SECONDS
lint
say "lint took $(minutes $((SECONDS - started)))"
[[ ${1:-} == --lint-only ]] && exit 0

postgres_ensure
redis_ensure
# The hypervisor lane (tests marked `hypervisor`) must run, never skip: a real libvirtd with
# QEMU, and the tiny test image (built once per recipe, then cached outside the checkout).
# This machine becomes a hypervisor host by Ansible's hypervisor role, applied -c local
# (scripts/libvirtd.sh), on every run; tests/e2e/test_ansible_hypervisor_role.py re-applies
# it over SSH and expects no change.
say "hypervisor lane: the hypervisor role on this machine, and the test image"
"$ROOT/scripts/libvirtd.sh"
"$ROOT/scripts/build-test-image.sh" >/dev/null
"$ROOT/scripts/build-debian-image.sh" >/dev/null # tests/e2e/test_debian_cloud_init.py

# The two lanes run side by side, each in its own pytest process: the hypervisor lane spends
# most of its minutes waiting on guests (TCG) and daemons, the fast lane on Python and
# PostgreSQL, so together they take little more than the longer of the two (run one after
# the other they passed CI's 30 minutes on a slow day). Each has its own test database and
# its own broker, so neither's workers take the other's tasks; every object a test makes on
# a host, in OVN or in a namespace is already named per test session (tests/support).
# Where the minutes of the run go: each lane's minutes (tests/support/lanes.py) and the
# slowest tests are listed at the end of each lane's output.
mkdir -p "$VAR/log"
hv_log="$VAR/log/test-hypervisor-lane.log"
private_redis_start redis-test-hv
say "running the hypervisor lane in the background (its output: $hv_log, printed at the end)"
started=$SECONDS
(
    export DATABASE_URL="$(hv_database_url)"
    export CELERY_BROKER_URL="redis+socket://$RUN_DIR/redis-test-hv.sock"
    run_lane hypervisor 0 -m hypervisor
) >"$hv_log" 2>&1 &
hv_pid=$!
say "running the fast lane (fake hypervisor, PostgreSQL, API fuzzing)"
fast_status=0
# Niced: when both want the two CPUs, the guests' boots and the hypervisor lane's bounds
# (a hang guard of a minute or two each) go first; the fast lane has no wall-clock target.
run_lane fast 5 -m "not hypervisor" || fast_status=$?
say "waiting for the hypervisor lane"
hv_status=0
wait "$hv_pid" || hv_status=$?
printf '\n'
say "the hypervisor lane's output ($hv_log):"
cat "$hv_log"
say "the test suite took $(minutes $((SECONDS - started))) (fast lane exit $fast_status, hypervisor lane exit $hv_status)"
((fast_status == 0 && hv_status == 0))

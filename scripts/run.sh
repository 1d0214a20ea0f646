#!/usr/bin/env bash
# run.sh — the embedded default: migrate, create the demo accounts, then run the API server,
# a Celery worker and Celery beat (and a private Redis when no broker is configured) in the
# foreground until Ctrl-C.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

say "migrating the database"
"$VENV/bin/python" manage.py migrate --no-input -v0
"$VENV/bin/python" manage.py bootstrap_demo
exec "$VENV/bin/python" scripts/supervise.py

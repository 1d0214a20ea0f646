#!/usr/bin/env bash
# restore.sh — restore a backup made by scripts/backup.sh into an EMPTY database.
#
#   scripts/restore.sh [--no-reconcile] DIR
#
# Run it with the control plane's environment, API and workers stopped. DATABASE_MIGRATE_URL
# (else DATABASE_URL) names the database, which must exist and be empty (createdb it as its
# owner; the owner and runtime roles must exist, as the dump grants to them). The same
# ANDROMEDE_AUDIT_* settings (signing key, checkpoint file), ANDROMEDE_SHRED_LEDGER_FILE and
# image store directories as production: they are not in the backup, by design.
# Steps: 1. every file is checked against SHA256SUMS (nothing is changed if one differs);
# 2. pg_restore --single-transaction --exit-on-error, then manage.py migrate (a backup of an
# older release); 3. manage.py restore_finish: signs a `restore` audit checkpoint, destroys
# again the keys shredded since the backup (the shred ledger), puts the image files back
# checked against their SHA-256, and runs one reconciler round (--no-reconcile: leave it to
# beat). Then start the API and workers. docs/operations.md, "Backups and restore".
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { die "usage: $0 [--no-reconcile] DIR"; }
finish=(restore_finish)
while (($#)); do
    case "$1" in
        --no-reconcile) finish+=(--no-reconcile); shift ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        -*) usage ;;
        *) break ;;
    esac
done
(($# == 1)) || usage
dir="$(cd -- "$1" && pwd)" || die "no backup directory $1"
[[ -f "$dir/manifest.json" && -f "$dir/SHA256SUMS" && -f "$dir/database.dump" ]] \
    || die "$dir is not a backup made by scripts/backup.sh (manifest.json, SHA256SUMS, database.dump)"

# libpq's variables from the URL: no password on pg_dump's, pg_restore's or psql's command
# line (scripts/pg_env.py).
url="${DATABASE_MIGRATE_URL:-${DATABASE_URL:-}}"
[[ "$url" == postgres://* || "$url" == postgresql://* || "$url" == pgsql://* ]] \
    || die "DATABASE_URL (or DATABASE_MIGRATE_URL) must name the PostgreSQL database to restore into"
while IFS= read -r -d '' pair; do export "${pair?}"; done \
    < <(ANDROMEDE_PG_URL="$url" "$VENV/bin/python" "$ROOT/scripts/pg_env.py")
[[ -n "${PGDATABASE:-}" ]] || die "cannot read the database URL (above)"
export PGCONNECT_TIMEOUT="${PGCONNECT_TIMEOUT:-10}"

say "checking every file of $dir against SHA256SUMS"
(cd -- "$dir" && sha256sum --check --strict --quiet SHA256SUMS) \
    || die "the backup in $dir is damaged (above): nothing was restored"

tables="$(timeout 60 psql --no-psqlrc --tuples-only --no-align \
    --command="SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")"
[[ "$tables" == 0 ]] || die "the database is not empty ($tables tables): restore into a new, empty database"

say "restoring the database (pg_restore)"
timeout "${ANDROMEDE_RESTORE_TIMEOUT:-3600}" \
    pg_restore --exit-on-error --single-transaction --dbname="$PGDATABASE" "$dir/database.dump"

# A backup of an older release: its schema brought to this one's (nothing to do otherwise;
# migrations write no audit event, so the chain stays the backup's).
say "migrating the restored database to this release's schema"
"$VENV/bin/python" "$ROOT/manage.py" migrate --no-input

say "finishing: restore checkpoint, shreds re-applied, image files, reconciler"
"$VENV/bin/python" "$ROOT/manage.py" "${finish[@]}" --manifest "$dir/manifest.json"
say "restore complete; start the API and the workers, then run: manage.py audit_verify --require-checkpoint"

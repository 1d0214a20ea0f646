#!/usr/bin/env bash
# backup.sh — back up Andromède: the PostgreSQL database and the image stores, with a manifest.
#
#   scripts/backup.sh [--stores NAME,NAME] DIR
#
# Run it with the control plane's environment (the same ANDROMEDE_* settings and DATABASE_URL
# as the API; DATABASE_MIGRATE_URL, the owner's, is used when set). DIR must be new or empty;
# it is made 0700 and receives:
#   database.dump   pg_dump's custom format (-Fc): restore with scripts/restore.sh
#   images/<store>/ every file of each image store (uploads, snapshots, exports)
#   manifest.json   when, the dump's and every image file's SHA-256, the audit chain's head
#                   in the dump (event id, hash, count), the stores' zones and jurisdictions
#   SHA256SUMS      the same checksums, for `sha256sum --check`
# --stores limits the image stores copied (a store of another jurisdiction can be backed up
# to storage in its own zone by another run). NEVER in a backup: the volume master key and the
# audit signing key (docs/operations.md, "Backups and restore" says why and what to keep where).
# Point-in-time recovery (base backup + WAL archiving) is the production option: same section.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { die "usage: $0 [--stores NAME,NAME] DIR"; }
stores=""
while (($#)); do
    case "$1" in
        --stores) (($# >= 2)) || usage; stores="$2"; shift 2 ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        -*) usage ;;
        *) break ;;
    esac
done
(($# == 1)) || usage
dir="$1"

# libpq's variables from the URL: no password on pg_dump's, pg_restore's or psql's command
# line (scripts/pg_env.py).
url="${DATABASE_MIGRATE_URL:-${DATABASE_URL:-}}"
[[ "$url" == postgres://* || "$url" == postgresql://* || "$url" == pgsql://* ]] \
    || die "DATABASE_URL (or DATABASE_MIGRATE_URL) must name the PostgreSQL database to back up"
while IFS= read -r -d '' pair; do export "${pair?}"; done \
    < <(ANDROMEDE_PG_URL="$url" "$VENV/bin/python" "$ROOT/scripts/pg_env.py")
[[ -n "${PGDATABASE:-}" ]] || die "cannot read the database URL (above)"
export PGCONNECT_TIMEOUT="${PGCONNECT_TIMEOUT:-10}"

umask 077
mkdir -p -- "$dir"
[[ -z "$(ls -A -- "$dir")" ]] || die "$dir is not empty: give a new directory for each backup"
dir="$(cd -- "$dir" && pwd)"

# The manifest's "when" is pg_dump's start: its snapshot is taken as it connects.
taken_at="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
say "dumping the database (pg_dump -Fc) into $dir/database.dump"
timeout "${ANDROMEDE_BACKUP_DUMP_TIMEOUT:-3600}" \
    pg_dump --format=custom --file="$dir/database.dump"

say "copying the image stores and writing the manifest"
args=(backup_manifest "$dir" --taken-at "$taken_at")
[[ -z "$stores" ]] || args+=(--stores "$stores")
"$VENV/bin/python" "$ROOT/manage.py" "${args[@]}"
say "backup complete: $dir (check it with: cd $(printf '%q' "$dir") && sha256sum --check SHA256SUMS)"

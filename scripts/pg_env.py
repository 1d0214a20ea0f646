"""Print the libpq environment (PGHOST, PGUSER, PGPASSWORD, …) for the PostgreSQL URL in
$ANDROMEDE_PG_URL, as NUL-separated NAME=value pairs, for scripts/backup.sh and restore.sh:
pg_dump, pg_restore and psql then connect without the password on their command line (where
`ps` would show it). The URL is read as the settings read DATABASE_URL (iaas.env)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout, for iaas.env

from iaas.env import database_from_url

#: URL query parameters (libpq's names) and the variables libpq reads them from.
OPTIONS = {
    "sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT", "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY", "sslcrl": "PGSSLCRL", "connect_timeout": "PGCONNECT_TIMEOUT",
    "options": "PGOPTIONS", "application_name": "PGAPPNAME", "target_session_attrs":
    "PGTARGETSESSIONATTRS", "passfile": "PGPASSFILE", "service": "PGSERVICE",
}  # fmt: skip


def main() -> int:
    database = database_from_url(os.environ.get("ANDROMEDE_PG_URL", ""))
    if not database["ENGINE"].endswith("postgresql"):
        print("not a PostgreSQL URL", file=sys.stderr)
        return 1
    pairs = {
        "PGHOST": database["HOST"], "PGPORT": database["PORT"], "PGUSER": database["USER"],
        "PGPASSWORD": database["PASSWORD"], "PGDATABASE": database["NAME"],
    }  # fmt: skip
    for key, value in database["OPTIONS"].items():
        if key not in OPTIONS:
            print(f"unknown connection option {key!r} in the URL", file=sys.stderr)
            return 1
        pairs[OPTIONS[key]] = value
    sys.stdout.write("".join(f"{name}={value}\0" for name, value in pairs.items() if value))
    return 0


if __name__ == "__main__":
    sys.exit(main())

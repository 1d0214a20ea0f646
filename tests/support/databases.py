"""The tests' PostgreSQL server as other processes reach it: the URL of the test database
(for the workers and API servers a test starts, which must see what it committed) and
throwaway databases of a test's own (migrated or restored by another process)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import psycopg
from django.conf import settings

#: Django's OPTIONS that are not libpq connection parameters.
NOT_LIBPQ = {"isolation_level", "pool", "server_side_binding", "assume_role", "cursor_factory"}


def _default() -> dict[str, Any]:
    db = settings.DATABASES["default"]
    assert db["ENGINE"].endswith("postgresql"), "another process needs a shared database"
    return db


def database_url(name: str | None = None) -> str:
    """The DATABASE_URL of database `name` (by default the one this test runs on)."""
    db = _default()
    auth = quote(db["USER"] or "", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    where = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    return f"postgresql://{auth}@{where}/{name or db['NAME']}"


def admin_connection() -> psycopg.Connection[Any]:
    """An autocommit connection to the `postgres` database of the tests' server."""
    db = _default()
    options = {k: v for k, v in db.get("OPTIONS", {}).items() if k not in NOT_LIBPQ}
    return psycopg.connect(
        dbname="postgres", host=db["HOST"] or None, port=db["PORT"] or None,
        user=db["USER"] or None, password=db["PASSWORD"] or None, autocommit=True, **options,
    )  # fmt: skip


@contextmanager
def throwaway_database(label: str) -> Iterator[str]:
    """The name of a new, empty database on the tests' server, dropped afterwards whatever
    happened (and whoever is still connected)."""
    name = f"{_default()['NAME'][:30]}_{label}_{uuid.uuid4().hex[:12]}"
    with admin_connection() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with admin_connection() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

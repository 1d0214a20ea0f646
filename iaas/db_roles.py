"""Two PostgreSQL roles (review M2): the owner runs migrations; the application runs as a
runtime role that may append to the audit log but never rewrite it.

The runtime role gets SELECT, INSERT, UPDATE and DELETE on the project's tables, except:
- `iaas_auditevent`: SELECT and INSERT only (no UPDATE, DELETE or TRUNCATE);
- `iaas_auditchainhead`: SELECT, INSERT and UPDATE (a writer locks the head row with
  SELECT … FOR UPDATE, which needs UPDATE), no DELETE or TRUNCATE; its trigger (migration
  iaas 0003) lets the head only move forward, to the next event;
- `django_migrations`: SELECT only;
and never TRUNCATE, REFERENCES or TRIGGER anywhere. Not owning the tables, it can neither
ALTER them nor DISABLE or DROP their triggers. `grant_runtime` refuses a role that owns the
tables, is a member of their owner or is a superuser: such a role could undo all this.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper

from iaas.env import database_from_url

AUDIT_TABLE = "iaas_auditevent"
HEAD_TABLE = "iaas_auditchainhead"
_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class RoleError(Exception):
    """The runtime role cannot be granted as asked: the message says why."""


def _quoted(role: str) -> str:
    if not _ROLE_NAME.fullmatch(role):
        raise RoleError(f"{role!r} is not a plain role name (lower-case letters, digits, _)")
    return f'"{role}"'


def runtime_role_problems(connection: BaseDatabaseWrapper, role: str) -> list[str]:
    """Why `role` could rewrite the audit log despite its grants (empty: it cannot)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", [role])
        row = cursor.fetchone()
        if row is None:
            return [f"role {role} does not exist (create it first: CREATE ROLE … LOGIN)"]
        problems = ["it is a superuser"] if row[0] else []
        cursor.execute(
            "SELECT pg_get_userbyid(relowner) FROM pg_class "
            "WHERE oid = to_regclass(%s) AND relkind = 'r'",
            [AUDIT_TABLE],
        )
        owner_row = cursor.fetchone()
        if owner_row is not None:
            owner = owner_row[0]
            cursor.execute("SELECT pg_has_role(%s, %s, 'MEMBER')", [role, owner])
            member = cursor.fetchone()
            if owner == role:
                problems.append(f"it owns {AUDIT_TABLE} (the migrations role must own it)")
            elif member is not None and member[0]:
                problems.append(f"it is a member of {owner}, the owner of {AUDIT_TABLE}")
    return problems


def grant_runtime(connection: BaseDatabaseWrapper, role: str) -> None:
    """Grant `role` exactly the runtime rights above on every table of the current schema
    (run as the tables' owner, after each migration: new tables need grants too)."""
    if connection.vendor != "postgresql":
        raise RoleError("database roles apply to PostgreSQL only")
    quoted = _quoted(role)
    problems = runtime_role_problems(connection, role)
    if problems:
        raise RoleError(f"{role} cannot be the runtime role: " + "; ".join(problems))
    statements = [
        f"GRANT USAGE ON SCHEMA public TO {quoted}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {quoted}",
        f"REVOKE TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA public FROM {quoted}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {quoted}",
        f"REVOKE UPDATE, DELETE ON {AUDIT_TABLE} FROM {quoted}",
        f"REVOKE DELETE ON {HEAD_TABLE} FROM {quoted}",
        f"REVOKE INSERT, UPDATE, DELETE ON django_migrations FROM {quoted}",
    ]
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def use_owner_credentials(connection: BaseDatabaseWrapper, url: str) -> None:
    """Point `connection` at the same database with the owner's credentials and address
    from `url` (DATABASE_MIGRATE_URL); the database name stays the connection's own (a test
    database, for instance)."""
    owner: dict[str, Any] = database_from_url(url)
    if owner["ENGINE"] != connection.settings_dict["ENGINE"]:
        raise RoleError("DATABASE_MIGRATE_URL must name the same kind of database as DATABASE_URL")
    connection.close()
    for key in ("USER", "PASSWORD", "HOST", "PORT"):
        connection.settings_dict[key] = owner[key]


def grant_after_migrate(using: str = DEFAULT_DB_ALIAS, **_: Any) -> None:
    """post_migrate receiver: keep the runtime role's grants in step with the tables."""
    role = getattr(settings, "DATABASE_RUNTIME_ROLE", "")
    connection = connections[using]
    if role and connection.vendor == "postgresql":
        grant_runtime(connection, role)

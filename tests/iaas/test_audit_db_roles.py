"""M2: on PostgreSQL the application runs as a runtime role that can append to the audit log
but not rewrite it; migrations run as the tables' owner.

A throwaway role is made for each test (role `andromede` has CREATEROLE; scripts/test.sh
gives it on a fresh machine) and granted by `manage.py db_grant_runtime`; the review's SQL is
then run as that role, statement by statement, on a connection of its own."""

from __future__ import annotations

import io
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from iaas.audit import Actor, audit_record
from iaas.models import AuditChainHead, AuditEvent
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)  # the role's own connection sees commits


@pytest.fixture(autouse=True)
def _postgres(db: None) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("database roles are PostgreSQL's (the production database)")


class Role:
    def __init__(self, name: str, password: str):
        self.name, self.password = name, password

    def connect(self) -> psycopg.Connection[Any]:
        params = connection.settings_dict
        return psycopg.connect(
            host=params["HOST"],
            port=params["PORT"] or 5432,
            dbname=params["NAME"],
            user=self.name,
            password=self.password,
            connect_timeout=5,
            autocommit=True,
        )


@pytest.fixture
def make_role() -> Iterator[Any]:
    """make_role() → a new LOGIN role, dropped (with its grants) after the test."""
    made: list[Role] = []

    def make() -> Role:
        role = Role(f"andromede_rt_{secrets.token_hex(4)}", secrets.token_urlsafe(16))
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE ROLE {role.name} LOGIN PASSWORD %s", [role.password])
        made.append(role)
        return role

    yield make
    with connection.cursor() as cursor:
        for role in made:  # roles are the cluster's: revoke what this database gave, drop
            cursor.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role.name}")
            cursor.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {role.name}")
            cursor.execute(f"REVOKE ALL ON SCHEMA public FROM {role.name}")
            cursor.execute(f"DROP ROLE {role.name}")


@pytest.fixture
def runtime_role(make_role: Any) -> Role:
    role = make_role()
    out = io.StringIO()
    call_command("db_grant_runtime", role.name, stdout=out)
    assert out.getvalue().startswith(f"granted {role.name}:")
    return role


@contextmanager
def django_connected_as(role: Role) -> Iterator[None]:
    """The application's own connection, as `role` (what DATABASE_URL would say)."""
    saved = {key: connection.settings_dict[key] for key in ("USER", "PASSWORD")}
    connection.close()
    connection.settings_dict.update(USER=role.name, PASSWORD=role.password)
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.update(saved)


def snapshot() -> tuple[list[tuple[int, str, str]], tuple[int | None, str]]:
    events = list(AuditEvent.objects.order_by("id").values_list("id", "action", "hash"))
    head = AuditChainHead.objects.get()
    return events, (head.last_event_id, head.last_hash)


def verify() -> str:
    out = io.StringIO()
    call_command("audit_verify", stdout=out)
    return out.getvalue()


def test_the_reviews_sql_run_as_the_runtime_role_is_refused_and_changes_nothing(runtime_role):
    events = [audit_record(actor=Actor.system("tests"), action=f"test.{i}") for i in range(5)]
    keep = events[2]
    before = snapshot()
    review_sql: list[tuple[str, list[Any], str]] = [
        # M2's reproduction, each statement alone, then the other ways around it.
        ("ALTER TABLE iaas_auditevent DISABLE TRIGGER iaas_auditevent_append_only", [], "owner"),
        ("DELETE FROM iaas_auditevent WHERE id > %s", [keep.id], "permission denied"),
        ("TRUNCATE iaas_auditevent", [], "permission denied"),
        (
            "UPDATE iaas_auditchainhead SET last_event_id = %s, "
            "last_hash = (SELECT hash FROM iaas_auditevent WHERE id = %s)",
            [keep.id, keep.id],
            "only moves forward",
        ),
        ("ALTER TABLE iaas_auditevent ENABLE TRIGGER iaas_auditevent_append_only", [], "owner"),
        ("UPDATE iaas_auditevent SET action = 'forged' WHERE id = %s", [keep.id], "permission"),
        ("ALTER TABLE iaas_auditevent DISABLE TRIGGER ALL", [], "owner"),
        ("ALTER TABLE iaas_auditchainhead DISABLE TRIGGER ALL", [], "owner"),
        ("DROP TRIGGER iaas_auditevent_append_only ON iaas_auditevent", [], "owner"),
        ("DELETE FROM iaas_auditchainhead", [], "permission denied"),
        ("TRUNCATE iaas_auditchainhead", [], "permission denied"),
        ("SET session_replication_role = replica", [], "permission denied"),
        ("DROP TABLE iaas_auditevent", [], "owner"),
    ]
    with runtime_role.connect() as conn:
        for sql, params, refusal in review_sql:
            with pytest.raises(psycopg.Error, match=refusal):
                conn.execute(sql, params)
    assert snapshot() == before
    assert verify().startswith("audit chain OK: 5 events verified")


def test_the_application_works_as_the_runtime_role(runtime_role, ssh_public_keys):
    """What the app does every day (tenants, tokens, keypairs, their audit events, the head)
    still works with the runtime role's rights."""
    with django_connected_as(runtime_role):
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_user")
            assert cursor.fetchone() == (runtime_role.name,)
        tenant = factories.tenant("acme")
        factories.keypair(tenant, ssh_public_keys["ed25519"], "laptop")
        assert AuditEvent.objects.filter(tenant_id=tenant.pk).count() >= 2
        assert verify().startswith("audit chain OK")
        call_command("audit_checkpoint", stdout=io.StringIO())
    head = AuditChainHead.objects.get()
    assert head.last_event_id == AuditEvent.objects.latest("id").id


def test_a_role_that_owns_the_tables_cannot_be_the_runtime_role():
    owner = connection.settings_dict["USER"]
    with pytest.raises(CommandError, match="owns iaas_auditevent"):
        call_command("db_grant_runtime", owner, stdout=io.StringIO())


def test_a_member_of_the_owner_cannot_be_the_runtime_role(make_role):
    role = make_role()
    with connection.cursor() as cursor:
        cursor.execute(f"GRANT {connection.settings_dict['USER']} TO {role.name}")
    with pytest.raises(CommandError, match="is a member of"):
        call_command("db_grant_runtime", role.name, stdout=io.StringIO())


@pytest.mark.parametrize("bad", ["Robert'); DROP TABLE x;--", "UPPER", "a b"])
def test_a_role_name_is_never_pasted_into_sql(bad):
    with pytest.raises(CommandError, match="not a plain role name"):
        call_command("db_grant_runtime", bad, stdout=io.StringIO())


def test_migrate_as_the_owner_grants_the_runtime_role(make_role, settings):
    """DATABASE_URL names the runtime role, DATABASE_MIGRATE_URL the owner: `migrate`
    connects as the owner, and grants the runtime role its rights afterwards."""
    role = make_role()
    params = dict(connection.settings_dict)
    settings.DATABASE_MIGRATE_URL = (
        f"postgresql://{params['USER']}:{params['PASSWORD']}@{params['HOST']}:{params['PORT']}"
        f"/{params['NAME']}"
    )
    settings.DATABASE_RUNTIME_ROLE = role.name

    def can(privilege: str, table: str = "iaas_auditevent") -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT has_table_privilege(%s, %s, %s)", [role.name, table, privilege])
            row = cursor.fetchone()
        return bool(row and row[0])

    assert not can("INSERT")
    with django_connected_as(role):
        call_command("migrate", verbosity=0)
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_user")
            assert cursor.fetchone() == (params["USER"],), "migrate ran as the owner"
    assert can("INSERT")
    assert can("SELECT")
    assert not can("UPDATE")
    assert not can("DELETE")
    assert not can("TRUNCATE")
    assert can("UPDATE", "iaas_auditchainhead")
    assert not can("DELETE", "iaas_auditchainhead")
    assert can("DELETE", "compute_keypair")
    assert not can("TRUNCATE", "compute_keypair")
    assert can("SELECT", "django_migrations")
    assert not can("INSERT", "django_migrations")


@pytest.mark.parametrize(
    ("migrate_url", "runtime_role"),
    [
        ("", ""),  # one role for everything (development, tests): nothing to grant
        ("postgresql://app:pw@db/andromede", ""),  # the same role twice: nothing to grant
        ("postgresql://owner:pw@db/andromede", "app"),  # two roles: DATABASE_URL's is runtime
    ],
)
def test_the_runtime_role_defaults_to_database_urls_user_when_the_owner_is_another(
    migrate_url, runtime_role
):
    env = {
        **os.environ,
        "DATABASE_URL": "postgresql://app:pw@db/andromede",
        "DATABASE_MIGRATE_URL": migrate_url,
        "ANDROMEDE_DATABASE_RUNTIME_ROLE": "",
        "DJANGO_SETTINGS_MODULE": "iaas.settings",
    }
    script = "from django.conf import settings as s; print(s.DATABASE_RUNTIME_ROLE)"
    shown = subprocess.run(
        [sys.executable, "-c", script],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert shown.stdout.strip() == runtime_role

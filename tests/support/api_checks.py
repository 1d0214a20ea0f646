"""What every refused API request must look like (DESIGN §9, §10): one error shape, no
business row changed, and exactly the audit trace the design promises. Shared by the isolation
matrix (tests/test_isolation_matrix.py) and the per-resource cases (tests/support/api_cases.py).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import connection
from django.db.models import Model

from iaas.models import AuditEvent, RefusedRead

#: Rows any request may write without changing the business state: the audit log is checked
#: on its own, sign-in attempts are the lockout's bookkeeping.
BOOKKEEPING = {
    "iaas.auditevent",
    "iaas.auditchainhead",
    "tenants.signinattempt",
    "tenants.authnoise",  # anonymous refusals are counted there (M1), like sign-in attempts
    "iaas.refusedread",  # refused reads are counted there (L5), then summarised
}
#: Columns a request refreshes as a side effect: a token's last use.
BOOKKEEPING_FIELDS = {"tenants.apitoken": {"last_used_at", "last_used_address"}}


@functools.cache
def business_models() -> list[type[Model]]:
    """Every table of the project's own apps (the folders at the top of the checkout) and
    their many-to-many tables, found in the app registry so that a new app's tables are
    compared without anyone listing them. Found once per session (the registry does not
    change; resolving every app's path took 8 ms a snapshot, 40 % of a refused request's
    test); callers must not change the list."""
    root = Path(settings.BASE_DIR).resolve()
    found = []
    for model in apps.get_models(include_auto_created=True):
        config = model._meta.app_config
        if config is None or Path(config.path).resolve().parent != root:
            continue  # Django's and third-party apps
        if model._meta.label_lower not in BOOKKEEPING:
            found.append(model)
    return sorted(found, key=lambda model: model._meta.label_lower)


def business_rows() -> dict[str, list[Any]]:
    """Every business row, and the image store's files, for a before/after comparison."""
    models = business_models()
    if connection.vendor == "postgresql":
        rows = _rows_in_one_query(models)
    else:
        rows = {model._meta.label_lower: model_rows(model) for model in models}
    store = Path(settings.IMAGE_STORE_DIR)
    rows["image store"] = sorted(p.name for p in store.iterdir()) if store.is_dir() else []
    return rows


def _kept_columns(model: type[Model]) -> list[str]:
    skipped = BOOKKEEPING_FIELDS.get(model._meta.label_lower, set())
    return [str(f.column) for f in model._meta.concrete_fields if f.name not in skipped]


def model_rows(model: type[Model], **filters: Any) -> list[Any]:
    """A table's rows (those matching `filters`), bookkeeping columns left out."""
    skipped = BOOKKEEPING_FIELDS.get(model._meta.label_lower, set())
    fields = [f.attname for f in model._meta.concrete_fields if f.name not in skipped]
    return list(model._default_manager.filter(**filters).order_by("pk").values(*fields))


def _rows_in_one_query(models: list[type[Model]]) -> dict[str, list[Any]]:
    """The same rows, as JSON, in one round trip (the matrix takes thousands of snapshots;
    one query per table made them most of its time)."""
    with connection.cursor() as cursor:
        cursor.execute(_snapshot_sql(tuple(models)))
        values = cursor.fetchone()
    return {model._meta.label_lower: value for model, value in zip(models, values, strict=True)}


@functools.cache
def _snapshot_sql(models: tuple[type[Model], ...]) -> str:
    quote = connection.ops.quote_name
    parts = []
    for model in models:  # every name below is a model's own, quoted
        columns = ", ".join(quote(column) for column in _kept_columns(model))
        pk = model._meta.pk
        assert pk is not None
        table, order = quote(model._meta.db_table), quote(str(pk.column))
        rows = f"SELECT {columns} FROM {table}"  # noqa: S608
        aggregate = f"coalesce(json_agg(r ORDER BY r.{order}), '[]')"
        parts.append(f"(SELECT {aggregate} FROM ({rows}) r)")  # noqa: S608
    return f"SELECT {', '.join(parts)}"


def last_event_id() -> int:
    return AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def events_since(event_id: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(id__gt=event_id).order_by("id"))


def body_text(response: Any) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode()
    return response.content.decode()


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """The one error shape, with this status and code; the error object."""
    assert response.status_code == status, body_text(response)
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    return body["error"]


def assert_refusal_audited(
    since: int, *, write: bool, action: str, actor_id: Any, tenant_id: Any, code: str
) -> None:
    """A refused write by an authenticated caller leaves one `refused` event, in the caller's
    own tenant (none for an operator); a refused read leaves no event but is counted, in the
    caller's tenant, for the next `api.refused_reads` summary (L5)."""
    events = events_since(since)
    if not write:
        assert events == [], [(e.action, e.outcome) for e in events]
        counted = RefusedRead.objects.filter(actor_id=actor_id, tenant_id=tenant_id, code=code)
        assert counted.exists(), (actor_id, tenant_id, code, list(RefusedRead.objects.values()))
        return
    assert len(events) == 1, [(e.action, e.outcome) for e in events]
    [event] = events
    assert event.outcome == AuditEvent.Outcome.REFUSED
    assert event.action == action
    assert event.tenant_id == tenant_id
    assert event.actor_id == actor_id
    assert event.details["code"] == code

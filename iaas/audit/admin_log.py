"""Every write made through the Django admin lands in the audit chain (review M10).

Django records each admin add, change and delete (bulk "delete selected" included) as a
`LogEntry`, in the same transaction as the change. A receiver of LogEntry's post_save turns
each into an `admin.add` / `admin.change` / `admin.delete` audit event: users, groups and
permissions, zones, hosts, tenants — whatever the admin can write, without each ModelAdmin
having to remember it. Admin pages that also call a service keep that service's own event
(e.g. `tenant.update`); this one records that it was done by hand in the admin."""

from __future__ import annotations

from typing import Any

from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.db.models.signals import post_save
from django.dispatch import receiver

from iaas.audit.service import Actor, audit_record

_VERBS = {ADDITION: "add", CHANGE: "change", DELETION: "delete"}


@receiver(post_save, sender=LogEntry, dispatch_uid="iaas.audit.admin_log")
def audit_admin_write(sender: Any, instance: LogEntry, created: bool, **kwargs: Any) -> None:
    if not created:
        return
    content_type = instance.content_type
    model = f"{content_type.app_label}.{content_type.model}" if content_type else ""
    audit_record(
        actor=Actor(
            user_id=instance.user_id,
            label=instance.user.get_username(),
            credential="admin-session",
        ),
        action=f"admin.{_VERBS.get(instance.action_flag, 'change')}",
        target_type=model,
        target_id=str(instance.object_id or "")[:64],
        target_label=instance.object_repr[:200],
        details={"change": instance.get_change_message()[:1000]} if instance.change_message else {},
    )

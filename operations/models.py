"""Operations: every tenant-visible change that runs on a hypervisor (DESIGN §2-§4).

An operation is written in the same transaction as the change it carries out, and is the
outbox: after commit it is sent to its host's queue; a sweeper re-sends operations nobody
picked up and those whose worker's lease expired. A worker takes a lease (a conditional
update), runs the steps — each idempotent — and records each one.

The table keeps the name it had when this model lived in `compute` (docs/decisions.md).
"""

from __future__ import annotations

import uuid

from django.db import models

from tenants.models import Tenant


class Operation(models.Model):
    """One change to carry out on a host: `action` names its handler (operations.registry),
    `target_type`/`target_id` the resource it changes (any app's), `host_name` whose queue
    runs it. `steps` records each step's name, outcome and duration; `error` says why it
    failed. A worker holds it by its lease (`lease_owner` until `lease_expires_at`)."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="operations")
    action = models.CharField(max_length=32)  # <target type>.<verb>: instance.create, …
    target_type = models.CharField(max_length=32)
    target_id = models.UUIDField(db_index=True)
    host_name = models.CharField(max_length=63, help_text="Whose queue runs it.")
    actor_id = models.BigIntegerField(null=True, blank=True)
    actor_label = models.CharField(max_length=150, blank=True)
    request_id = models.CharField(max_length=128, blank=True)
    params = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    steps = models.JSONField(default=list, blank=True)
    progress = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    lease_owner = models.CharField(max_length=100, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "compute_operation"
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="operation_tenant_recent"),
            models.Index(fields=["status", "enqueued_at"], name="operation_sweep"),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.target_id} ({self.status})"

"""Instances and the capacity they claim on a host."""

from __future__ import annotations

import uuid

from django.db import models

from compute.models.flavors import Flavor
from compute.models.keypairs import KeyPair
from compute.states import InstanceStatus, TaskState
from hosts.models import Host
from tenants.models import Tenant


class Instance(models.Model):
    """A virtual machine. `status` is what the tenant sees; `task_state` names the verb in
    progress (null when idle) and is changed only by conditional updates, so two verbs can
    never both run (compute.states); `power_state` is what libvirt last reported."""

    Status = InstanceStatus
    TaskState = TaskState

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="instances")
    name = models.CharField(max_length=64)
    flavor = models.ForeignKey(Flavor, on_delete=models.PROTECT, related_name="instances")
    image_id = models.UUIDField()
    keypair = models.ForeignKey(
        KeyPair, on_delete=models.SET_NULL, null=True, blank=True, related_name="instances"
    )
    ssh_public_key = models.TextField(blank=True, help_text="The key given at creation.")
    user_data = models.TextField(blank=True)
    host = models.ForeignKey(
        Host, on_delete=models.PROTECT, null=True, blank=True, related_name="instances"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.BUILDING)
    task_state = models.CharField(  # noqa: DJ001 - null = idle (DESIGN §3)
        max_length=16, null=True, blank=True, choices=TaskState.choices
    )
    power_state = models.CharField(max_length=12, blank=True)
    fault = models.TextField(blank=True, help_text="Why the last operation failed.")
    vcpus = models.PositiveIntegerField()
    memory_mb = models.PositiveIntegerField()
    disk_gb = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    # The pending resize (compute.services.resize): the flavor before it, set from the resize
    # request until it is confirmed or reverted. `flavor` is already the new one meanwhile.
    previous_flavor = models.ForeignKey(
        Flavor,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="The flavor before a resize awaiting confirm or revert.",
    )
    server_group = models.ForeignKey(
        "compute.ServerGroup",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="members",
    )

    class Meta:
        indexes = [models.Index(fields=["tenant", "-created_at"], name="instance_tenant_recent")]

    def __str__(self) -> str:
        return self.name


class Allocation(models.Model):
    """The capacity an instance holds on its host. Claimed under a lock on the host row, in
    the creating transaction; released when the instance is deleted or fails to build."""

    instance = models.OneToOneField(Instance, on_delete=models.CASCADE, related_name="allocation")
    host = models.ForeignKey(Host, on_delete=models.PROTECT, related_name="allocations")
    vcpus = models.PositiveIntegerField()
    memory_mb = models.PositiveIntegerField()
    disk_gb = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            # The reconciler's check_host_usage sums each host's allocations: covering the
            # summed columns lets PostgreSQL answer from the index alone.
            models.Index(
                fields=["host"],
                include=["vcpus", "memory_mb", "disk_gb"],
                name="allocation_host_usage",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.instance_id} on {self.host_id}"

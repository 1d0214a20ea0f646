"""Instances, the capacity they claim on a host, and their network ports."""

from __future__ import annotations

import uuid

from django.db import models

from compute.models.flavors import Flavor
from compute.models.hosts import Host
from compute.models.keypairs import KeyPair
from tenants.models import Tenant


class Instance(models.Model):
    """A virtual machine. `status` is what the tenant sees; `task_state` names the verb in
    progress (null when idle) and is changed only by conditional updates, so two verbs can
    never both run; `power_state` is what libvirt last reported."""

    class Status(models.TextChoices):
        BUILDING = "building"
        ACTIVE = "active"
        STOPPED = "stopped"
        ERROR = "error"
        DELETING = "deleting"
        DELETED = "deleted"
        RESIZING = "resizing"
        VERIFY_RESIZE = "verify_resize"

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
    task_state = models.CharField(max_length=16, null=True, blank=True)  # noqa: DJ001 - null = idle (DESIGN §3)
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


class TenantNetwork(models.Model):
    """The default isolated network of a tenant (replaced by real tenant networks in the
    networking issue): one subnet from the documentation ranges, one bridge per host."""

    tenant = models.OneToOneField(Tenant, on_delete=models.PROTECT, related_name="network")
    cidr = models.CharField(max_length=18, unique=True)
    # Where the next address search starts: addresses rotate through the range, so a freed
    # address is not handed out again at once (its old DHCP entry on the host would have to
    # be replaced, which costs a dnsmasq reload).
    next_host_index = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.tenant} {self.cidr}"


class Port(models.Model):
    """An instance's address on its tenant network. Unique constraints make two concurrent
    allocations of one address or MAC impossible."""

    network = models.ForeignKey(TenantNetwork, on_delete=models.PROTECT, related_name="ports")
    instance = models.OneToOneField(Instance, on_delete=models.CASCADE, related_name="port")
    mac = models.CharField(max_length=17, unique=True)
    ip = models.GenericIPAddressField(protocol="IPv4")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["network", "ip"], name="port_unique_ip"),
        ]

    def __str__(self) -> str:
        return f"{self.ip} ({self.mac})"

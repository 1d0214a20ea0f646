"""Where tenant data can live: regions, zones (datacenters, each under a jurisdiction),
hypervisor hosts and their storage pools (DESIGN §6), and what the reconciler finds on hosts
that the database does not know.

The tables keep the names they had when these models lived in `compute` (docs/decisions.md).
"""

from __future__ import annotations

import uuid

from django.db import models


class Region(models.Model):
    """A group of nearby zones, e.g. `fr-par`."""

    name = models.SlugField(max_length=32, unique=True)
    description = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "compute_region"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Zone(models.Model):
    """A datacenter. `jurisdiction` (ISO 3166 code) is what residency policies are checked
    against; `country` is where the building is (usually the same)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="zones")
    name = models.SlugField(max_length=32, unique=True)
    site = models.CharField(max_length=100, help_text="Datacenter operator and building.")
    city = models.CharField(max_length=100)
    country = models.CharField(max_length=2)
    jurisdiction = models.CharField(max_length=2)
    certifications = models.JSONField(
        default=list, blank=True, help_text='e.g. ["SecNumCloud", "HDS", "ISO 27001"]'
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "compute_zone"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Host(models.Model):
    """A hypervisor. Its `name` routes its work: the Celery queue `host.<name>`.

    Capacity is discovered from libvirt at onboarding and refreshed by heartbeats; what the
    scheduler may place is (capacity - reserved) x allocation ratio.
    """

    class DomainType(models.TextChoices):
        KVM = "kvm"
        QEMU = "qemu", "qemu (TCG, software emulation)"
        TEST = "test", "test (libvirt's in-process fake, for tests)"

    class Datapath(models.TextChoices):
        """Open vSwitch's datapath on the host: the kernel module (production), or the
        userspace one (hosts without the module, such as our lab machines)."""

        SYSTEM = "system"
        NETDEV = "netdev"

    class State(models.TextChoices):
        # Onboarding (hosts.services.onboarding): a worker reaches the host; without an
        # expected fingerprint the key first seen waits for the operator's confirmation;
        # a refused or failed onboarding ends in `error` (state_reason says why).
        PENDING = "pending"
        AWAITING_CONFIRMATION = "awaiting_confirmation"
        ERROR = "error"
        ENABLED = "enabled"
        DISABLED = "disabled"
        MAINTENANCE = "maintenance"
        # Being emptied: placements avoid it (the scheduler takes only enabled hosts) and
        # its instances are cold-migrated away (compute.services.drain).
        DRAINING = "draining"
        DOWN = "down"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=63, unique=True)
    zone = models.ForeignKey(Zone, on_delete=models.PROTECT, related_name="hosts")
    libvirt_uri = models.CharField(max_length=255)
    # SSH access for onboarding and host plumbing; blank ssh_host means the local machine.
    ssh_host = models.CharField(max_length=255, blank=True)
    ssh_port = models.PositiveIntegerField(default=22)
    ssh_username = models.CharField(max_length=64, default="root")
    # The pinned host key (SSH sessions and libvirt's SSH channel trust only it): an
    # operator's expected fingerprint, or the one first seen once the operator confirmed it.
    ssh_host_key_fingerprint = models.CharField(max_length=100, blank=True)
    ssh_host_key = models.TextField(blank=True, help_text="The pinned key: '<type> <base64>'.")
    # The key a host presented when no fingerprint was expected: shown to the operator, who
    # compares it out of band and confirms it (POST …/confirm); not trusted until then.
    ssh_host_key_seen_fingerprint = models.CharField(max_length=100, blank=True)
    ssh_host_key_seen = models.TextField(blank=True)
    storage_root = models.CharField(max_length=255)
    # Where guests' NICs join OVN (DESIGN §7): the integration bridge and its datapath. On
    # the userspace datapath guests' checksum offload must be off (shared/notes/ovn-lab.md).
    ovs_bridge = models.CharField(max_length=15, default="br-int")
    ovs_datapath = models.CharField(max_length=8, choices=Datapath.choices, default=Datapath.SYSTEM)
    # blank until onboarded when the operator let onboarding choose (kvm if it works, else qemu)
    domain_type = models.CharField(max_length=8, choices=DomainType.choices, blank=True)

    arch = models.CharField(max_length=16, blank=True)
    cpu_model = models.CharField(max_length=100, blank=True)
    cpus = models.PositiveIntegerField(default=0)
    memory_mb = models.PositiveIntegerField(default=0)
    disk_gb = models.PositiveIntegerField(default=0)
    libvirt_version = models.CharField(max_length=32, blank=True)
    hypervisor_version = models.CharField(max_length=32, blank=True)
    domain_types = models.JSONField(default=list, blank=True)
    security_driver = models.CharField(
        max_length=32,
        blank=True,
        help_text="libvirt's security driver (apparmor, selinux; none: guests unconfined).",
    )

    reserved_cpus = models.PositiveIntegerField(default=0)
    reserved_memory_mb = models.PositiveIntegerField(default=512)
    reserved_disk_gb = models.PositiveIntegerField(default=0)
    cpu_allocation_ratio = models.FloatField(default=4.0)
    ram_allocation_ratio = models.FloatField(default=1.0)
    disk_allocation_ratio = models.FloatField(default=1.0)

    # What the host's allocations hold, kept by compute.services.scheduler: changed only under this
    # row's lock, in the transaction that inserts or deletes the Allocation, so placement reads
    # plain columns instead of summing allocations. The reconciler (check_host_usage) verifies
    # them against the Allocation rows and corrects any drift, with an audit event.
    allocated_vcpus = models.IntegerField(default=0)
    allocated_memory_mb = models.BigIntegerField(default=0)
    allocated_disk_gb = models.BigIntegerField(default=0)

    state = models.CharField(max_length=24, choices=State.choices, default=State.ENABLED)
    state_reason = models.CharField(max_length=255, blank=True)
    # Why onboarding ended in `error`, as a stable code (host_key_mismatch, host_unreachable…).
    onboarding_error_code = models.CharField(max_length=40, blank=True)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    last_heartbeat_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "compute_host"
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(cpu_allocation_ratio__gt=0)
                & models.Q(ram_allocation_ratio__gt=0)
                & models.Q(disk_allocation_ratio__gt=0),
                name="host_allocation_ratios_positive",
            ),
            models.CheckConstraint(
                condition=models.Q(allocated_vcpus__gte=0)
                & models.Q(allocated_memory_mb__gte=0)
                & models.Q(allocated_disk_gb__gte=0),
                name="host_allocated_nonnegative",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_local(self) -> bool:
        return not self.ssh_host

    @property
    def is_onboarded(self) -> bool:
        """Onboarding finished: the host has facts, pools and (if remote) a pinned key."""
        return self.state in ONBOARDED_STATES


#: The states of a host whose onboarding finished (the others: pending, awaiting_confirmation,
#: error — no driver is ever opened for those but by onboarding itself).
ONBOARDED_STATES = (
    Host.State.ENABLED,
    Host.State.DISABLED,
    Host.State.MAINTENANCE,
    Host.State.DRAINING,
    Host.State.DOWN,
)


class StoragePool(models.Model):
    """A libvirt storage pool on a host, by role. Directory pools now; the backend field is
    there for LVM and Ceph RBD."""

    class Role(models.TextChoices):
        IMAGES = "images"
        INSTANCES = "instances"
        VOLUMES = "volumes"

    class Backend(models.TextChoices):
        DIR = "dir"
        LVM = "lvm"
        RBD = "rbd"

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="storage_pools")
    role = models.CharField(max_length=12, choices=Role.choices)
    backend = models.CharField(max_length=8, choices=Backend.choices, default=Backend.DIR)
    name = models.CharField(max_length=64, help_text="The libvirt pool name on the host.")
    path = models.CharField(max_length=255)
    capacity_bytes = models.BigIntegerField(default=0)
    available_bytes = models.BigIntegerField(default=0)

    class Meta:
        db_table = "compute_storagepool"
        constraints = [
            models.UniqueConstraint(fields=["host", "role"], name="storagepool_unique_role"),
            models.UniqueConstraint(fields=["host", "name"], name="storagepool_unique_name"),
        ]

    def __str__(self) -> str:
        return f"{self.host}:{self.name}"


class CephCluster(models.Model):
    """A Ceph cluster serving RBD volumes to every host of its `zone` that reaches it (a
    shared backend: a volume on it has no host of its own). Operators declare it with
    `manage.py ceph_cluster_add`. Hosts reach it at `monitors` (``[[host, port], …]``,
    msgr v1), as the cephx user `user` (without ``client.``), which should have ``profile
    rbd`` on the RADOS pool `rados_pool` only.

    Its key is never in the database: `key_file` is the path, on every machine that runs a
    worker, of a file readable by its owner only (0600) holding the key (as ``ceph auth
    get-key`` prints it, or a keyring). Workers read it when they define it on a host, as
    the libvirt secret `secret_uuid` (ephemeral, private: hosts.ceph); it is never logged,
    audited or returned by the API."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.SlugField(max_length=32, unique=True)
    zone = models.ForeignKey(Zone, on_delete=models.PROTECT, related_name="ceph_clusters")
    monitors = models.JSONField(help_text='[["10.0.0.1", 6789], …]: host and msgr v1 port.')
    rados_pool = models.CharField(max_length=64)
    user = models.CharField(max_length=64, help_text="The cephx user, without client.")
    key_file = models.CharField(max_length=255, help_text="Its key, 0600, on every worker.")
    secret_uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # Its RADOS pool's size and free space as the reconciler last read them (null: never
    # yet): a placement filter, not a claim (RBD images are thin, like qcow2 files).
    capacity_bytes = models.BigIntegerField(null=True, blank=True, editable=False)
    available_bytes = models.BigIntegerField(null=True, blank=True, editable=False)
    space_measured_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class OrphanReport(models.Model):
    """Something found on a host that the database does not know (DESIGN §2: the reconciler
    reports orphans and never deletes tenant data silently). Operators review and clear."""

    class Kind(models.TextChoices):
        DOMAIN = "domain"
        VOLUME = "volume"  # named <pool>/<volume>

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="orphans")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    name = models.CharField(max_length=255)
    details = models.JSONField(default=dict, blank=True)
    first_seen_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "compute_orphanreport"
        constraints = [
            models.UniqueConstraint(fields=["host", "kind", "name"], name="orphan_unique")
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.name} on {self.host}"

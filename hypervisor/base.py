"""The hypervisor boundary (DESIGN §5).

`Hypervisor` is what the control plane needs from a virtualisation host. Every method states
its contract; every input and output is a frozen dataclass of plain values; every failure is
one of this module's errors. Implementations must make each mutating call idempotent as its
docstring says, because worker steps may run twice (a worker dies, a task is redelivered).

Nothing here (or below this package) imports Django.
"""

from __future__ import annotations

import enum
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

# --- Errors ---------------------------------------------------------------------------------


class DriverError(Exception):
    """A hypervisor operation failed and retrying as-is will not help."""


class NotFound(DriverError):
    """The domain, volume, pool or network does not exist."""


class TransientError(DriverError):
    """The host could not be reached or answered too slowly; the same call may succeed later
    (connection refused or reset, timeouts, libvirt VIR_ERR_SYSTEM_ERROR)."""


class SpecConflict(DriverError):
    """An object with this name exists with a different, incompatible specification."""


class Unsupported(DriverError):
    """This hypervisor, or its storage backend, cannot do that at all (libvirt's
    VIR_ERR_NO_SUPPORT). libvirt's test driver, for one, cannot upload, download, resize or
    wipe volumes."""


# --- Facts and states -----------------------------------------------------------------------


class PowerState(enum.StrEnum):
    """A domain's power state as the hypervisor reports it."""

    RUNNING = "running"
    PAUSED = "paused"
    SHUTDOWN = "shutdown"  # shutting down
    SHUTOFF = "shutoff"
    CRASHED = "crashed"
    SUSPENDED = "suspended"
    BLOCKED = "blocked"
    NOSTATE = "nostate"


@dataclass(frozen=True)
class HostFacts:
    hostname: str
    arch: str
    cpus: int
    cpu_model: str
    memory_mb: int
    libvirt_version: str
    hypervisor_version: str
    domain_types: tuple[str, ...]
    #: What confines each guest: `apparmor` or `selinux` (sVirt), `none` without one.
    security_driver: str = "none"


@dataclass(frozen=True)
class DomainInfo:
    name: str
    power_state: PowerState
    vcpus: int
    memory_mb: int
    tenant_id: str | None = None
    instance_id: str | None = None


@dataclass(frozen=True)
class DomainEvent:
    """A lifecycle event: `kind` is started, stopped, suspended, resumed, shutdown, crashed,
    defined, undefined, other."""

    domain: str
    kind: str
    detail: int = 0


# --- Specifications -------------------------------------------------------------------------


@dataclass(frozen=True)
class DiskSpec:
    """A disk attached to a domain: a volume in a storage pool. A volume of an rbd pool is
    attached as a network disk naming the pool's cluster (libvirt refuses volume disks on
    rbd pools): the pool must be defined on the host, with its secret, when the domain is
    defined or the disk attached; its `format` is raw."""

    pool: str
    volume: str
    target: str  # vda, vdb, sda…
    device: str = "disk"  # disk | cdrom
    bus: str = "virtio"  # virtio | scsi | ide | sata; a cdrom on virtio goes on virtio-scsi
    format: str = "qcow2"  # qcow2 | raw
    readonly: bool = False
    #: An encrypted volume (QEMU's LUKS): the UUID of the libvirt secret holding its
    #: passphrase, which must be defined on the host (`define_secret`) while QEMU opens it.
    encryption_secret: str | None = None


#: Taps of OVS-attached NICs are named "tap" + this many hex digits of the port's UUID, so
#: host rules can match every guest's tap by the prefix (and 14 characters fit IFNAMSIZ).
TAP_PREFIX = "tap"
TAP_ID_DIGITS = 11


def tap_name(interface_id: str) -> str:
    """The host-side device name of the NIC bound to the OVN port `interface_id` (a UUID):
    ``tap`` + its first 11 hex digits, e.g. ``tapf3eb9dcc82a``. ValueError if not a UUID."""
    return TAP_PREFIX + uuid.UUID(interface_id).hex[:TAP_ID_DIGITS]


@dataclass(frozen=True)
class NicSpec:
    """A virtual NIC, in one of two forms:

    - on a libvirt network: `network` (the old form, until compute moves to OVN);
    - on an Open vSwitch bridge (`bridge`, normally ``br-int``) as the OVN logical switch
      port `interface_id` (a UUID: libvirt refuses anything else, and ovn-controller binds
      the port of that name), with the tap named `target_dev` (see `tap_name`) and the
      guest's `mtu` (the overlay's, e.g. 1442 under Geneve). `csum_off` turns the guest's
      checksum offload off (``<driver><host csum='off'/>``): a host setting, needed on
      the userspace (netdev) datapath, which forwards partial checksums unchanged and so
      loses the guest's TCP (shared/notes/ovn-lab.md); never on the kernel datapath.

    Exactly one of `network` and `bridge` is set. `mac` identifies the NIC in a domain
    (attach and detach find it by MAC)."""

    network: str | None
    mac: str
    model: str = "virtio"
    filter_name: str | None = None  # an nwfilter (libvirt networks only)
    bridge: str | None = None
    interface_id: str | None = None
    mtu: int | None = None
    target_dev: str | None = None
    csum_off: bool = False

    @classmethod
    def on_ovs(
        cls,
        *,
        bridge: str,
        interface_id: str,
        mac: str,
        mtu: int | None = None,
        csum_off: bool = False,
    ) -> NicSpec:
        """An OVS-attached NIC for the OVN port `interface_id`, its tap named by `tap_name`."""
        return cls(
            network=None,
            mac=mac,
            bridge=bridge,
            interface_id=interface_id,
            mtu=mtu,
            target_dev=tap_name(interface_id),
            csum_off=csum_off,
        )


@dataclass(frozen=True)
class DomainSpec:
    """A virtual machine. `name` is the instance UUID (never a tenant-chosen string);
    `title` is the display name, stored as text (it cannot alter the XML)."""

    name: str
    title: str
    tenant_id: str
    instance_id: str
    vcpus: int
    memory_mb: int
    disks: tuple[DiskSpec, ...]
    nics: tuple[NicSpec, ...] = ()
    domain_type: str = "kvm"  # kvm | qemu (TCG)
    arch: str = "x86_64"
    console_log: str | None = None  # file path the serial console is written to


@dataclass(frozen=True)
class RbdSource:
    """Where an rbd pool's images live: a Ceph cluster's `monitors` (host, port: msgr v1,
    what libvirt and QEMU are given), its RADOS `pool`, and the cephx `user` (without
    ``client.``) whose key is the libvirt secret `secret_uuid` (`define_secret` with
    ``ceph=True``; never in this spec, so it never reaches a log or an XML)."""

    monitors: tuple[tuple[str, int], ...]
    pool: str
    user: str
    secret_uuid: str


@dataclass(frozen=True)
class PoolSpec:
    """A storage pool: `backend` ``dir`` (a directory at `path`, qcow2 files) or ``rbd``
    (a Ceph RBD pool, `rbd` says which; `path` is unused, empty). No lvm: these kernels have
    no device-mapper, and no backend ships untested (DESIGN §8)."""

    name: str
    path: str
    backend: str = "dir"
    rbd: RbdSource | None = None

    @classmethod
    def on_rbd(cls, name: str, rbd: RbdSource) -> PoolSpec:
        return cls(name=name, path="", backend="rbd", rbd=rbd)


#: How a live copy of a disk (Hypervisor.backup_attached_disk) holds its instant.
FROZEN = "frozen"  # the guest agent froze the file systems: they were flushed and still
CRASH_CONSISTENT = "crash-consistent"  # no agent answered: as after a power cut


@dataclass(frozen=True)
class PoolInfo:
    name: str
    path: str
    capacity_bytes: int
    available_bytes: int
    active: bool


@dataclass(frozen=True)
class StorageVolumeSpec:
    pool: str
    name: str
    capacity_bytes: int
    format: str = "qcow2"  # qcow2 | raw
    backing_pool: str | None = None  # a qcow2 overlay on this volume…
    backing_volume: str | None = None
    backing_format: str = "qcow2"
    #: Created encrypted in QEMU's LUKS format (a qcow2 with LUKS encryption) with the
    #: passphrase of this libvirt secret (UUID), which must be defined while it is created.
    encryption_secret: str | None = None


@dataclass(frozen=True)
class StorageVolumeInfo:
    pool: str
    name: str
    path: str
    capacity_bytes: int
    allocation_bytes: int
    format: str


@dataclass(frozen=True)
class StaticLease:
    mac: str
    ip: str
    hostname: str = ""


@dataclass(frozen=True)
class NetworkSpec:
    """An isolated L2 network (no forwarding) with a bridge, an address and DHCP."""

    name: str
    bridge: str
    gateway_cidr: str  # e.g. 203.0.113.1/24
    dhcp_start: str | None = None
    dhcp_end: str | None = None
    leases: tuple[StaticLease, ...] = field(default_factory=tuple)


# --- The interface --------------------------------------------------------------------------


class Hypervisor(ABC):
    """One virtualisation host. Implementations bound every call by a timeout and raise
    `TransientError` when the host cannot be reached in time."""

    @abstractmethod
    def facts(self) -> HostFacts:
        """The host's identity and capacity as the hypervisor reports them."""

    # Domains ---------------------------------------------------------------------------------

    @abstractmethod
    def define_domain(self, spec: DomainSpec) -> None:
        """Define (persist) the domain. Defining a domain that exists with the same spec is a
        no-op; with another spec it replaces the definition (takes effect at next boot)."""

    @abstractmethod
    def start_domain(self, name: str) -> None:
        """Start a defined domain. Already running: no-op. Missing: NotFound."""

    @abstractmethod
    def shutdown_domain(self, name: str, timeout_seconds: float) -> bool:
        """Ask the guest to power off (ACPI) and wait up to `timeout_seconds`; if it is still
        running then, force it off. Returns True if the guest stopped by itself. Already off:
        no-op returning True. Missing: NotFound."""

    @abstractmethod
    def reboot_domain(self, name: str, *, hard: bool = False) -> None:
        """Soft: ask the guest to reboot (ACPI). Hard: reset the virtual machine. The domain
        must be running (DriverError otherwise). Missing: NotFound."""

    @abstractmethod
    def destroy_domain(self, name: str) -> None:
        """Force the domain off immediately. Already off or missing: no-op."""

    @abstractmethod
    def undefine_domain(self, name: str) -> None:
        """Forget the domain's definition (forcing it off first if it runs). Missing: no-op.
        Never deletes its volumes."""

    @abstractmethod
    def domain_info(self, name: str) -> DomainInfo:
        """Power state and size of one domain. Missing: NotFound."""

    @abstractmethod
    def list_domains(self) -> list[DomainInfo]:
        """Every domain defined or running on the host, including ones the control plane does
        not know (the reconciler reports those as orphans)."""

    @abstractmethod
    def console_output(self, name: str, max_bytes: int = 64 * 1024) -> str:
        """The last `max_bytes` of the serial console log (decoded leniently). No log yet:
        empty string. Missing domain: NotFound."""

    @abstractmethod
    def lifecycle_events(self, timeout_seconds: float) -> Iterator[DomainEvent]:
        """Domain lifecycle events as they happen, for at most `timeout_seconds`. Events are
        collected from the moment of this call (not of the first `next()`), so a caller can
        subscribe, act, then read what its action caused."""

    @abstractmethod
    def probe_domain_type(self, domain_type: str) -> bool:
        """Start and destroy a minimal transient guest of this type (no disk, 32 MiB); True if
        its virtual CPU ran (its firmware got through to the boot attempt in time). A type the
        host does not list: False. Used to find out that a listed type does not work (KVM
        listed while QEMU cannot run a guest with it)."""

    # Storage ---------------------------------------------------------------------------------

    @abstractmethod
    def ensure_pool(self, spec: PoolSpec) -> None:
        """Create (if missing), build, start and autostart the pool. Existing with the same
        path: no-op. Existing with another path: SpecConflict. An rbd pool holds nothing
        itself (its images are in Ceph; running guests' disks name the cluster, not the
        pool): one existing with another source (monitors, RADOS pool, user, secret) is
        defined again with this one. Its secret must be defined first (`define_secret` with
        ``ceph=True``), the cluster reachable: DriverError otherwise (TransientError if the
        call timed out)."""

    @abstractmethod
    def pool_info(self, name: str) -> PoolInfo:
        """Size and free space of a pool (refreshed first). Missing: NotFound."""

    @abstractmethod
    def create_storage_volume(self, spec: StorageVolumeSpec) -> StorageVolumeInfo:
        """Create a volume, optionally a qcow2 overlay on a backing volume. A volume with this
        name and the same spec exists: no-op returning it. With another spec: SpecConflict.
        "The same" compares format and backing exactly and the capacity as "at least": a
        volume grown since its creation still satisfies the step that created it. Missing
        pool or backing volume: NotFound. In an rbd pool a volume is a raw RBD image,
        without backing or encryption (DriverError otherwise)."""

    @abstractmethod
    def storage_volume_info(self, pool: str, name: str) -> StorageVolumeInfo:
        """Missing: NotFound."""

    @abstractmethod
    def list_storage_volumes(self, pool: str) -> list[StorageVolumeInfo]:
        """Every volume of the pool, files made behind libvirt's back included (the pool is
        refreshed first). Missing pool: NotFound."""

    @abstractmethod
    def resize_storage_volume(self, pool: str, name: str, capacity_bytes: int) -> None:
        """Grow the volume to `capacity_bytes`. Already that size: no-op. Shrinking:
        DriverError (data would be lost)."""

    @abstractmethod
    def copy_storage_volume(
        self,
        source_pool: str,
        source_name: str,
        spec: StorageVolumeSpec,
        *,
        ceph_key: bytes | None = None,
    ) -> StorageVolumeInfo:
        """Create the volume `spec` as a standalone copy of the source volume's content, read
        through its backing chain: a qcow2 overlay comes out flattened, with no backing.
        `spec` has no backing and at least the source's capacity (DriverError otherwise). A
        volume named `spec.name` exists already: SpecConflict (a copy cannot be known to be
        complete: delete it and copy again). Missing source or pool: NotFound. Bounded by a
        long timeout: the whole disk is read and written.

        Into an rbd pool (libvirt copies only within one: ``qemu-img convert -n`` writes
        the raw image instead) from a directory pool: the host must be this machine (a local
        URI; Unsupported otherwise) and `ceph_key` the pool user's cephx key, raw bytes
        (DriverError without it), handed to qemu-img in a private file, never on a command
        line. A failed copy deletes the image it made. Copies out of an rbd pool (RBD
        snapshots and clones are the way there, not built yet): DriverError."""

    @abstractmethod
    def upload_storage_volume(self, pool: str, name: str, source: BinaryIO, length: int) -> None:
        """Stream `length` bytes from `source` into the existing volume, from offset 0.
        Declare the volume with the content's real format: directory pools re-detect it
        after an upload (a qcow2 image uploaded into a "raw" volume reads back as qcow2).
        A source shorter than `length`: DriverError."""

    @abstractmethod
    def download_storage_volume(self, pool: str, name: str, sink: Callable[[bytes], object]) -> int:
        """Stream the volume's content to `sink`, chunk by chunk; returns the bytes sent."""

    @abstractmethod
    def delete_storage_volume(self, pool: str, name: str, *, wipe: bool = True) -> None:
        """Wipe then delete the volume so its data cannot leak to the next user of the space:
        every byte of a file is overwritten in place with zeros and synced to disk before the
        file is removed (a sparse file's holes included: its blocks are never freed with data
        on them). A file the pool did not list yet (a console log) is found too. An RBD image
        is discarded whole (its RADOS objects removed) then removed: none of its objects is
        left in the pool; one with snapshots is refused (DriverError). Missing: no-op.
        libvirt's test driver, which holds no data, deletes without wiping. Bounded as a
        whole (the wipe writes up to the whole file); interrupted, it can be called again."""

    # NICs ------------------------------------------------------------------------------------

    @abstractmethod
    def attach_nic(self, name: str, nic: NicSpec) -> None:
        """Add the NIC to the domain's persistent definition and, while the domain runs, to
        the running guest (hot-plug): both places, each checked on its own, so a call
        interrupted half-way completes on the next. A NIC with this MAC already in a place:
        no-op there if it is the same attachment (same network, or same bridge and
        interface id), SpecConflict if it is another. Missing domain: NotFound. A
        hypervisor that cannot attach devices (libvirt's test driver): Unsupported."""

    @abstractmethod
    def detach_nic(self, name: str, mac: str, timeout_seconds: float = 20.0) -> None:
        """Remove the NIC with this MAC from the persistent definition and from the running
        guest. A running guest releases a hot-unplugged NIC itself (ACPI): wait up to
        `timeout_seconds` for it, then TransientError (the definition no longer has the
        NIC; calling again waits again). No NIC with this MAC: no-op. Missing domain:
        NotFound. A hypervisor that cannot detach devices: Unsupported."""

    # Disks (volumes attached to a domain) ----------------------------------------------------

    @abstractmethod
    def attach_disk(self, name: str, disk: DiskSpec) -> None:
        """Add the disk to the domain's persistent definition and, while the domain runs, to
        the running guest (hot-plug): both places, each checked on its own, so a call
        interrupted half-way completes on the next. A disk already at `disk.target` in a
        place: no-op there if it is the same volume (pool and name), SpecConflict if it is
        another. Missing domain: NotFound. A hypervisor that cannot attach devices
        (libvirt's test driver): Unsupported."""

    @abstractmethod
    def detach_disk(self, name: str, target: str, timeout_seconds: float = 20.0) -> None:
        """Remove the disk at `target` (vdb…) from the persistent definition and from the
        running guest. A running guest releases a hot-unplugged disk itself (ACPI): wait up
        to `timeout_seconds` for it, then TransientError (the definition no longer has the
        disk; calling again waits again). No disk at `target`: no-op. Missing domain:
        NotFound. A hypervisor that cannot detach devices: Unsupported."""

    @abstractmethod
    def resize_attached_disk(self, name: str, target: str, capacity_bytes: int) -> bool:
        """Grow the disk at `target` of the running domain to `capacity_bytes` through the
        hypervisor, which resizes the image it holds open and tells the guest at once (live
        extend). Returns True when the disk has that size now (already at least that size:
        a no-op). The domain not running: False, nothing done (nothing holds the storage
        open: resize the storage volume instead). No disk at `target` or missing domain:
        NotFound. A hypervisor that cannot resize a running domain's disks: Unsupported."""

    @abstractmethod
    def backup_attached_disk(
        self, name: str, target: str, pool: str, volume: str, timeout_seconds: float = 1800.0
    ) -> str | None:
        """Copy the disk at `target` of the running domain, as it is at this instant, into a
        new standalone qcow2 volume `volume` of the directory pool `pool` (libvirt's backup
        API, push mode: the guest keeps running and writing). Where a guest agent answers,
        the guest's file systems are frozen for the instant the copy starts, then thawed:
        the copy is FROZEN (what the file systems had flushed); otherwise it is what a power
        cut at that instant would have left: CRASH_CONSISTENT. Waits up to
        `timeout_seconds` for the copy, then aborts it and raises TransientError (what was
        written of `volume` is the caller's to delete). Returns FROZEN or CRASH_CONSISTENT
        once `volume` is complete and listed in the pool. The domain not running: None,
        nothing done
        (nothing writes to the storage: copy the storage volume instead). A backup left
        running by an interrupted caller is aborted before the new one starts. No disk at
        `target` or missing domain: NotFound. A hypervisor without the backup API
        (libvirt's test driver): Unsupported."""

    # Secrets (passphrases of encrypted volumes) --------------------------------------------

    @abstractmethod
    def define_secret(
        self, uuid: str, value: bytes, *, description: str = "", ceph: bool = False
    ) -> None:
        """Define the secret `uuid` with `value` on the host, ephemeral (never written to the
        host's disk, gone when libvirtd restarts) and private (nobody reads its value back
        through libvirt). Defined already: its value is set again (no-op in effect). A
        hypervisor without secrets (libvirt's test driver): Unsupported. `ceph`: a cephx
        key (raw bytes) for an rbd pool and its disks (libvirt's usage type ``ceph``);
        otherwise a volume's passphrase. A secret defined as the other kind: SpecConflict."""

    @abstractmethod
    def undefine_secret(self, uuid: str) -> None:
        """Remove the secret `uuid` from the host. Missing: no-op. Running guests that
        opened a disk with it keep it open; a new open (attach, start) needs it again."""

    @abstractmethod
    def list_secrets(self) -> list[str]:
        """The UUIDs of every secret defined on the host (ours and others')."""

    # Networks --------------------------------------------------------------------------------

    @abstractmethod
    def ensure_network(self, spec: NetworkSpec) -> None:
        """Define, start and autostart the isolated network; add missing static leases.
        Existing with the same bridge and address: no-op (apart from leases)."""

    @abstractmethod
    def delete_network(self, name: str) -> None:
        """Stop and undefine the network. Missing: no-op."""

    # Lifecycle of the driver ------------------------------------------------------------------

    @abstractmethod
    def close(self) -> None:
        """Release the connection. Safe to call twice."""

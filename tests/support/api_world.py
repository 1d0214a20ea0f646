"""The world API tests act in: tenant A (`alpha`) with a reader, a member and an admin,
tenant B (`bravo`) with an admin, and an operator. What they act on (a keypair of A, an
instance of B, a host…) is made on first use through tests/factories.py, so a test pays only
for the objects it touches. Shared by the isolation matrix and tests/support/api_cases.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction

from hosts.services import hosts as host_services
from iaas.models import AuditEvent
from images.services import stores as image_stores
from tenants import services as tenant_services
from tenants.models import Membership, Role, Tenant
from tests import factories
from tests.factories import SYSTEM
from tests.support.callers import PASSWORD, Caller

User = get_user_model()
#: The callers of every world, by name: `a_<role>` act in A, `b_admin` in B.
CALLERS = ("a_reader", "a_member", "a_admin", "b_admin", "operator")


@dataclass
class World:
    a: Tenant
    b: Tenant
    make_caller: Callable[..., Caller]  # tests.support.callers.caller_maker()
    keys: dict[str, str]  # OpenSSH public keys by type (the ssh_public_keys fixture)
    qcow2: Path  # a real qcow2 file to upload
    made: dict[tuple[str, str], Any] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)  # token_of(caller)'s secrets
    callers: dict[str, Caller] = field(default_factory=dict)  # made so far, by name

    def tenant(self, side: str) -> Tenant:
        return {"a": self.a, "b": self.b}[side]

    def caller(self, name: str) -> Caller:
        """One of CALLERS, made on first use (a user, its membership and its token)."""
        if name not in self.callers:
            if name == "operator":
                self.callers[name] = self.make_caller(None, operator=True)
            else:
                side, role = name.split("_")
                self.callers[name] = self.make_caller(self.tenant(side), Role(role))
        return self.callers[name]

    @cached_property
    def platform(self) -> SimpleNamespace:
        """A French zone with one roomy host on the fake hypervisor, the public flavors
        `small` and `big`, and an active public image: what any instance needs."""
        zone = factories.zone("fr-par-1")
        host = factories.host("world-h1", zone, cpus=64, memory_mb=64 * 1024, disk_gb=1000)
        small = factories.flavor("small", vcpus=1, memory_mb=256, disk_gb=1)
        big = factories.flavor("big", vcpus=2, memory_mb=512, disk_gb=2)
        image = factories.public_image(self.qcow2)
        return SimpleNamespace(zone=zone, host=host, small=small, big=big, image=image)

    @cached_property
    def outsider(self) -> str:
        """The username of a user who belongs to no tenant (one an admin may add)."""
        User.objects.create_user(username="outsider", password=PASSWORD)
        return "outsider"

    def obj(self, kind: str, side: str = "a") -> Any:
        """The object of `kind` belonging to `side` ("a" or "b"; for operator-only kinds,
        just a first and a second one), made on first use."""
        key = (kind, side)
        if key not in self.made:
            self.made[key] = BUILDERS[kind](self, side)
        return self.made[key]

    def pk(self, kind: str, side: str = "a") -> str:
        return str(self.obj(kind, side).pk)

    def token_of(self, caller: str) -> Any:
        """A spare reader token of `caller` (its own tokens are what it sees in /tokens);
        `secrets[caller]` is its secret."""
        key = ("token", caller)
        if key not in self.made:
            who = self.caller(caller)
            token, secret = tenant_services.token_create(
                actor=SYSTEM, user=who.user, tenant=who.tenant, name="spare", role=Role.READER
            )
            self.secrets[caller] = secret
            self.made[key] = token
        return self.made[key]

    def ids_of_a(self) -> list[str]:
        """The ids of everything made for tenant A so far (UUIDs: a small integer id could be
        any number in an answer): none may reach B's callers."""
        ids = [str(self.a.pk)]
        for (kind, side), made in self.made.items():
            owned_by_a = side == "a" or side.startswith("a_")
            if owned_by_a and kind not in OPERATOR_KINDS and isinstance(made.pk, uuid.UUID):
                ids.append(str(made.pk))
        return ids


def _instance(world: World, side: str) -> Any:
    tenant = world.tenant(side)
    made, operation = factories.instance(
        tenant, flavor=world.platform.small, image=world.platform.image, name=f"{tenant.slug}-vm"
    )
    world.made[("operation", side)] = operation
    return made


def _operation(world: World, side: str) -> Any:
    world.obj("instance", side)
    return world.made[("operation", side)]


def _built(kind: str) -> Callable[[World, str], Any]:
    def build(world: World, side: str) -> Any:
        tenant = world.tenant(side)
        common = {"flavor": world.platform.small, "image": world.platform.image}
        name = f"{tenant.slug}-{kind.split('_')[0]}"
        if kind == "resized_instance":
            return factories.resized_instance(tenant, to=world.platform.big, name=name, **common)
        maker = {"active_instance": factories.active_instance,
                 "stopped_instance": factories.stopped_instance}[kind]  # fmt: skip
        return maker(tenant, name=name, **common)

    return build


def _member(world: World, side: str) -> Membership:
    tenant = world.tenant(side)
    username = f"{tenant.slug}-colleague"
    User.objects.create_user(username=username, password=PASSWORD)
    return tenant_services.membership_add(
        actor=SYSTEM, tenant=tenant, username=username, role=Role.MEMBER
    )


def _audit_event(world: World, side: str) -> AuditEvent:
    """The newest event of the tenant (its keypair's creation)."""
    world.obj("keypair", side)
    return AuditEvent.objects.filter(tenant_id=world.tenant(side).pk).latest("id")


def _disabled_host(world: World, side: str) -> Any:
    made = factories.host(f"off-{side}", world.platform.zone)
    return host_services.host_set_state(
        actor=SYSTEM, host=made, state="disabled", reason="RAM errors"
    )


#: The key an onboarding host awaiting confirmation presented (tests/hosts covers the real
#: thing against an sshd; the matrix only needs a host in that state).
SEEN_FINGERPRINT = "SHA256:" + "A" * 43


def _onboarding_host(state: str) -> Callable[[World, str], Any]:
    def make(world: World, side: str) -> Any:
        from hosts.models import Host

        return Host.objects.create(
            name=f"{state[:5]}-{side}", zone=world.platform.zone, libvirt_uri="test:///default",
            storage_root="/fake", state=state, ssh_host="127.0.0.1",
            ssh_host_key_seen_fingerprint=SEEN_FINGERPRINT if state != "error" else "",
            ssh_host_key_seen="ssh-ed25519 AAAA" if state != "error" else "",
        )  # fmt: skip

    return make


def _network(world: World, side: str) -> Any:
    from network.services.networks import network_create

    return network_create(actor=SYSTEM, tenant=world.tenant(side), name="world-net")


def _subnet(name: str, cidr: str) -> Callable[[World, str], Any]:
    def make(world: World, side: str) -> Any:
        from network.services.networks import network_create
        from network.services.subnets import subnet_create

        network = (
            world.obj("network", side)
            if name == "world-net"
            else network_create(actor=SYSTEM, tenant=world.tenant(side), name=name)
        )
        return subnet_create(actor=SYSTEM, tenant=world.tenant(side), network=network, cidr=cidr)

    return make


def _port(world: World, side: str) -> Any:
    from network.services.ports import PortRequest, port_create

    world.obj("subnet", side)
    return port_create(
        actor=SYSTEM,
        tenant=world.tenant(side),
        request=PortRequest(network=world.obj("network", side), name="world-port"),
    )


def _security_group(world: World, side: str) -> Any:
    from network.services.security_groups import security_group_create

    return security_group_create(actor=SYSTEM, tenant=world.tenant(side), name="world-sg")


def _security_group_rule(world: World, side: str) -> Any:
    from network.services.security_groups import security_group_rule_create

    return security_group_rule_create(
        actor=SYSTEM, group=world.obj("security_group", side), direction="ingress",
        protocol="tcp", port_range_min=80, port_range_max=80,
    )  # fmt: skip


def _router(with_interface: bool) -> Callable[[World, str], Any]:
    def make(world: World, side: str) -> Any:
        from network.services.routers import router_add_interface, router_create

        name = "world-router-if" if with_interface else "world-router"
        router = router_create(actor=SYSTEM, tenant=world.tenant(side), name=name)
        if with_interface:
            router_add_interface(actor=SYSTEM, router=router, subnet=world.obj("subnet", side))
        return router

    return make


def _external_network(world: World, side: str) -> Any:
    """The operators' external network `world-public` (one, whatever the side)."""
    from network.services.networks import provider_network_create
    from network.services.subnets import subnet_create

    network = provider_network_create(
        actor=SYSTEM, name="world-public", physical_network="physnet1"
    )
    subnet_create(actor=SYSTEM, tenant=None, network=network, cidr="203.0.113.128/25")
    return network


def _floating_ip(world: World, side: str) -> Any:
    from network.services.floating_ips import floating_ip_create

    return floating_ip_create(
        actor=SYSTEM, tenant=world.tenant(side), network=world.obj("external_network", "x")
    )


def _associated_floating_ip(world: World, side: str) -> Any:
    """A floating IP mapped onto the side's port, through a router with a gateway on the
    external network and an interface on the port's subnet."""
    from network.services.floating_ips import floating_ip_create
    from network.services.routers import router_add_interface, router_create

    external = world.obj("external_network", "x")
    router = router_create(
        actor=SYSTEM, tenant=world.tenant(side), name="world-gw", external_network=external
    )
    router_add_interface(actor=SYSTEM, router=router, subnet=world.obj("subnet", side))
    return floating_ip_create(
        actor=SYSTEM, tenant=world.tenant(side), network=external, port=world.obj("port", side)
    )


def _volume(available: bool) -> Callable[[World, str], Any]:
    """A volume of the side's on the platform's host, of the public type `standard`:
    `creating` (its create operation queued), or made by the worker (`available`)."""

    def make(world: World, side: str) -> Any:
        tenant = world.tenant(side)
        world.platform  # noqa: B018 - the zone and host a volume is placed on
        options = {"volume_type": world.obj("public_volume_type", "x")}
        if available:
            return factories.available_volume(tenant, name=f"{tenant.slug}-disk", **options)
        made, _operation = factories.volume(tenant, name=f"{tenant.slug}-vol", **options)
        return made

    return make


def _attached_volume(world: World, side: str) -> Any:
    """The side's available volume attached to its active instance, as the worker leaves
    it (`in-use`; libvirt's fake cannot plug the disk in: the volumes' own services stand
    in for the operation)."""
    from volumes.services.attachments import volume_attachment_begin, volume_attachment_confirm

    instance = world.obj("active_instance", side)
    volume = world.obj("available_volume", side)
    with transaction.atomic():
        attachment = volume_attachment_begin(
            volume=volume, instance_id=instance.pk, host=instance.host, device="vdb"
        )
        volume_attachment_confirm(attachment)
    volume.refresh_from_db()
    return volume


def _volume_snapshot(world: World, side: str) -> Any:
    """A snapshot of the side's available volume, made by the worker (`available`)."""
    from volumes.services.snapshots import volume_snapshot_create

    snapshot, operation = volume_snapshot_create(
        actor=factories.SYSTEM, volume=world.obj("available_volume", side), name=f"{side}-snap"
    )
    factories.run(operation)
    snapshot.refresh_from_db()
    return snapshot


def _export_store(world: World, side: str) -> Any:
    """An image store in the platform's zone: where that zone's volumes are exported to."""
    directory = world.qcow2.parent / f"exports-store-{uuid.uuid4().hex[:8]}"
    directory.mkdir()
    return image_stores.image_store_create(
        actor=SYSTEM, name=f"exports-{side}", zone=world.platform.zone, path=str(directory)
    )


def _exportable_volume(world: World, side: str) -> Any:
    """The side's available volume, its zone with an image store to keep its exports."""
    world.obj("export_store", "x")
    return world.obj("available_volume", side)


def _exportable_snapshot(world: World, side: str) -> Any:
    """The side's available snapshot, its zone with an image store to keep its exports."""
    world.obj("export_store", "x")
    return world.obj("volume_snapshot", side)


def _export(world: World, side: str) -> Any:
    """An available export of the side's available volume (made by the worker)."""
    from volumes.services.exports import volume_export

    volume = world.obj("exportable_volume", side)
    export, operation = volume_export(actor=SYSTEM, volume=volume)
    factories.run(operation)
    export.refresh_from_db()
    return export


BUILDERS: dict[str, Callable[[World, str], Any]] = {
    "associated_floating_ip": _associated_floating_ip,
    "network": _network,
    "subnet": _subnet("world-net", "198.51.100.0/26"),
    "spare_subnet": _subnet("world-net2", "198.51.100.64/26"),
    "port": _port,
    "security_group": _security_group,
    "security_group_rule": _security_group_rule,
    "router": _router(with_interface=False),
    "router_with_interface": _router(with_interface=True),
    "floating_ip": _floating_ip,
    "external_network": _external_network,
    "keypair": lambda w, s: factories.keypair(w.tenant(s), w.keys["ed25519"], f"{s}-laptop"),
    "server_group": lambda w, s: factories.server_group(w.tenant(s), f"{s}-group"),
    "image": lambda w, s: factories.image(w.tenant(s), f"{w.tenant(s).slug}-image"),
    "active_image": lambda w, s: factories.image(
        w.tenant(s), f"{w.tenant(s).slug}-disk-image", file=w.qcow2
    ),
    "export_store": _export_store,
    "export": _export,
    "exportable_volume": _exportable_volume,
    "exportable_snapshot": _exportable_snapshot,
    "flavor": lambda w, s: factories.flavor(
        f"{w.tenant(s).slug}-only", is_public=False, tenants=[w.tenant(s).slug]
    ),
    "instance": _instance,
    "operation": _operation,
    "active_instance": _built("active_instance"),
    "stopped_instance": _built("stopped_instance"),
    "resized_instance": _built("resized_instance"),
    "volume": _volume(available=False),
    "available_volume": _volume(available=True),
    "attached_volume": _attached_volume,
    "volume_snapshot": _volume_snapshot,
    "volume_type": lambda w, s: factories.volume_type(
        f"{w.tenant(s).slug}-only", is_public=False, tenants=[w.tenant(s).slug]
    ),
    "member": _member,
    "audit_event": _audit_event,
    # Operators' objects (the side only tells a first from a second one)
    "tenant": lambda w, s: w.tenant(s),
    "zone": lambda w, s: factories.zone(f"fr-zone-{s}"),
    "host": lambda w, s: factories.host(f"h-{s}", w.platform.zone),
    "disabled_host": _disabled_host,
    "image_store": lambda w, s: image_stores.image_store_create(
        actor=SYSTEM, name=f"store-{s}", zone=w.platform.zone, path=str(w.qcow2.parent)
    ),
    "awaiting_host": _onboarding_host("awaiting_confirmation"),
    "failed_host": _onboarding_host("error"),
    "public_volume_type": lambda w, s: factories.volume_type("standard"),
}
OPERATOR_KINDS = {
    "external_network",
    "public_volume_type",
    "tenant",
    "zone",
    "host",
    "disabled_host",
    "image_store",
    "awaiting_host",
    "failed_host",
}


def build_world(
    make_tenant: Callable[..., Tenant],
    make_caller: Callable[..., Caller],
    keys: dict[str, str],
    qcow2: Path,
) -> World:
    """Tenants A and B; their callers and everything else are made on first use."""
    return World(
        a=make_tenant("alpha"), b=make_tenant("bravo"), make_caller=make_caller, keys=keys,
        qcow2=qcow2,
    )  # fmt: skip

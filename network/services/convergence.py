"""Writing the database's network intent into OVN (DESIGN §7), object by object, and the
reconciler that compares everything. Run by control workers only (network.tasks).

Every function is idempotent: it reads the rows as they are now and makes OVN say the same
(a second run changes nothing), so a task may run twice, late, or after a newer one. A row
that is gone means "remove it from OVN". Driver errors propagate: a `TransientError` (the NB
down or slow) is retried by the task, and marks the object `error` with a fault the tenant
can read once the retries are spent (`mark_error`).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Q

from hypervisor.base import NotFound
from hypervisor.ovn.acls import acls_for
from hypervisor.ovn.northbound import Northbound
from hypervisor.ovn.specs import port_group_name
from iaas.audit import Actor, audit_record
from network.models import FloatingIP, Network, Port, Router, SecurityGroup
from network.models.status import Realisation
from network.northbound import northbound
from network.services import ovn_specs

logger = logging.getLogger(__name__)
RECONCILER = Actor.system("network-reconciler")


def _exists(nb: Northbound, port_name: str) -> bool:
    try:
        nb.switch_port_up(port_name)
    except NotFound:
        return False
    return True


def _ensure_group(nb: Northbound, group: SecurityGroup, seen: set[uuid.UUID]) -> None:
    """The group's port group with its rules and its members that OVN has already (a port
    not there yet joins its groups itself, in the transaction that creates it); the groups
    its rules name as remote exist first (their address sets are in its ACLs)."""
    seen.add(group.pk)
    for rule in group.rules.exclude(remote_group=None).select_related("remote_group"):
        remote = rule.remote_group
        if remote is not None and remote.pk not in seen:
            _ensure_group(nb, remote, seen)
    wanted = {str(pk) for pk in group.ports.values_list("pk", flat=True)}
    # Members not in OVN yet are skipped inside the driver's transaction (they join when
    # they are created), so one made meanwhile by another worker is never taken out.
    nb.ensure_port_group(ovn_specs.group_spec(group, sorted(wanted)))
    # A port that joined the group in the database after our read, and that another worker
    # already created in OVN, was taken out by that write: it joins again (adding a port to
    # its groups never removes anyone).
    for name in {str(pk) for pk in group.ports.values_list("pk", flat=True)} - wanted:
        if _exists(nb, name):
            late = Port.objects.select_related("network").filter(pk=name).first()
            spec = ovn_specs.port_spec(late) if late is not None else None
            if spec is not None:
                nb.ensure_switch_port(spec)


def _ensure_switch(nb: Northbound, network: Network) -> None:
    nb.ensure_switch(ovn_specs.switch_spec(network))
    localnet = ovn_specs.localnet_spec(network)
    if localnet is not None:
        nb.ensure_switch_port(localnet)


def _ensure_port(nb: Northbound, port: Port, seen: set[uuid.UUID] | None = None) -> None:
    """The port and, first, its groups (but those in `seen`: ensured already by the caller
    in this pass; the port joins them itself, see `_ensure_group`)."""
    spec = ovn_specs.port_spec(port)
    if spec is None:
        return
    seen = set() if seen is None else seen
    for group in port.security_groups.all():
        if group.pk not in seen:
            _ensure_group(nb, group, seen)
    nb.ensure_switch_port(spec)


def _active(model: Any, pk: uuid.UUID) -> None:
    model.objects.filter(pk=pk).update(status=Realisation.ACTIVE, fault="")


def converge_port(port_id: uuid.UUID | str) -> None:
    """One port in OVN (its switch and its groups first); a router's leg also converges
    its router. A port that is gone is removed."""
    port = Port.objects.select_related("network").filter(pk=port_id).first()
    nb = northbound()
    if port is None:
        delete_port(port_id)
        return
    _ensure_switch(nb, port.network)
    _ensure_port(nb, port)
    if port.device_owner in ovn_specs.ROUTER_OWNERS and port.device_id is not None:
        converge_router(port.device_id)
    _active(Port, port.pk)


def converge_network(network_id: uuid.UUID | str) -> None:
    """A network's switch (with its provider tie and DHCP) and every port on it."""
    network = Network.objects.filter(pk=network_id).first()
    nb = northbound()
    if network is None:
        delete_network(network_id)
        return
    _ensure_switch(nb, network)
    routers: set[uuid.UUID] = set()
    # Each group once for the whole network, not once per port (that was O(ports²) reads:
    # a group's membership is checked port by port).
    seen: set[uuid.UUID] = set()
    for port in Port.objects.filter(network=network).select_related("network"):
        _ensure_port(nb, port, seen)
        _active(Port, port.pk)
        if port.device_owner in ovn_specs.ROUTER_OWNERS and port.device_id is not None:
            routers.add(port.device_id)
    for router_id in routers:
        converge_router(router_id)
    _active(Network, network.pk)


def converge_security_group(group_id: uuid.UUID | str) -> None:
    """The group's rules and members reach running guests (OVN applies ACL changes to
    established flows at once: measured in docs/benchmarks.md)."""
    group = SecurityGroup.objects.filter(pk=group_id).first()
    if group is None:
        delete_security_group(group_id)
        return
    _ensure_group(northbound(), group, set())


def converge_router(router_id: uuid.UUID | str) -> None:
    router = Router.objects.filter(pk=router_id).first()
    nb = northbound()
    if router is None:
        delete_router(router_id)
        return
    nb.ensure_router(ovn_specs.router_spec(router))
    _active(Router, router.pk)
    # Its floating IPs are realised with it; so are the tenant's floating IPs just
    # disassociated on its network: their row no longer names the router whose NAT they
    # left (the service clears it), and that NAT is gone now. (Another router of the tenant
    # on the same network they might have left converges in its own task, queued with it.)
    left = Q(router=None, tenant=router.tenant_id, network=router.external_network_id)
    FloatingIP.objects.filter(Q(router=router) | (left & ~Q(status=Realisation.ACTIVE))).update(
        status=Realisation.ACTIVE, fault=""
    )


def delete_port(port_id: uuid.UUID | str) -> None:
    if not Port.objects.filter(pk=port_id).exists():
        northbound().delete_switch_port(str(port_id))


def delete_network(network_id: uuid.UUID | str) -> None:
    if not Network.objects.filter(pk=network_id).exists():
        northbound().delete_switch(str(network_id))


def delete_security_group(group_id: uuid.UUID | str) -> None:
    if not SecurityGroup.objects.filter(pk=group_id).exists():
        northbound().delete_port_group(port_group_name(str(group_id)))


def delete_router(router_id: uuid.UUID | str) -> None:
    if not Router.objects.filter(pk=router_id).exists():
        northbound().delete_router(str(router_id))


KINDS: dict[str, Any] = {
    "network": Network,
    "port": Port,
    "router": Router,
}


def mark_error(kind: str, object_id: uuid.UUID | str, reason: str) -> None:
    """The object could not be written to OVN after every retry: `error`, with a fault that
    says what the tenant can expect (the reconciler keeps trying)."""
    model = KINDS.get(kind)
    if model is None:
        return
    fault = (
        f"The network service could not apply this change yet ({reason[:200]}); it is "
        "retried automatically. If this stays, contact the operators."
    )
    model.objects.filter(pk=object_id).update(status=Realisation.ERROR, fault=fault)


# --- the reconciler ---------------------------------------------------------------------------


@dataclass
class Drift:
    """What a reconciler pass found different in OVN, by kind, and repaired."""

    missing: list[str] = field(default_factory=list)  # in the database, not in OVN
    changed: list[str] = field(default_factory=list)  # in both, different (or unreadable)
    extra: list[str] = field(default_factory=list)  # ours in OVN, gone from the database

    def __bool__(self) -> bool:
        return bool(self.missing or self.changed or self.extra)

    def differs(
        self, kind: str, name: str, held: object, wanted: object, unreadable: set[str]
    ) -> bool:
        """Whether OVN must be written for `kind name`: recorded as missing (OVN holds
        nothing: `held` None) or changed (different, or too damaged to read)."""
        if held is None:
            self.missing.append(f"{kind} {name}")
            return True
        if held != wanted or name in unreadable:
            self.changed.append(f"{kind} {name}")
            return True
        return False

    def as_dict(self) -> dict[str, list[str]]:
        return {"missing": self.missing, "changed": self.changed, "extra": self.extra}


def reconcile() -> Drift:
    """Compare every object of ours in OVN with the database; make OVN say what the
    database says (missing and changed objects written again, objects of ours the database
    no longer has removed). Other installations' rows and rows nobody owns are left alone.
    A pass that repaired something is reported: an audit event `network.drift_repaired`
    and a warning in the log."""
    nb = northbound()
    inventory = nb.inventory()
    drift = Drift()
    unreadable = set(inventory.unreadable)

    networks = {str(n.pk): n for n in Network.objects.all()}
    held = {s.name: s for s in inventory.switches}
    for name, network in networks.items():
        want = ovn_specs.switch_spec(network)
        if drift.differs("switch", name, held.get(name), want, unreadable):
            _ensure_switch(nb, network)

    held_ports = {p.name: p for p in inventory.switch_ports}
    wanted_ports: dict[str, Any] = {}
    for port in Port.objects.select_related("network").prefetch_related("security_groups"):
        spec = ovn_specs.port_spec(port)
        if spec is not None:
            wanted_ports[spec.name] = (port, spec)
    for network in networks.values():
        localnet = ovn_specs.localnet_spec(network)
        if localnet is not None:
            wanted_ports[localnet.name] = (None, localnet)
    for name, (port, spec) in wanted_ports.items():
        if not drift.differs("port", name, held_ports.get(name), spec, unreadable):
            continue
        if port is None:
            nb.ensure_switch_port(spec)
        else:
            _ensure_port(nb, port)

    groups = {port_group_name(str(g.pk)): g for g in SecurityGroup.objects.all()}
    held_groups = {g.name: g for g in inventory.port_groups}
    for name, group in groups.items():
        members = sorted(str(pk) for pk in group.ports.values_list("pk", flat=True))
        wanted_group = ovn_specs.group_spec(group, members)
        state = held_groups.get(name)
        # Compared as the NB holds a group: its members and its ACLs.
        held_state = None if state is None else (state.ports, state.acls)
        want_state = (wanted_group.ports, acls_for(name, wanted_group.rules))
        if drift.differs("port group", name, held_state, want_state, set()):
            _ensure_group(nb, group, set())

    routers = {str(r.pk): r for r in Router.objects.all()}
    held_routers = {r.name: r for r in inventory.routers}
    for name, router in routers.items():
        want_router = ovn_specs.router_spec(router)
        if drift.differs("router", name, held_routers.get(name), want_router, unreadable):
            nb.ensure_router(want_router)

    for name in sorted(held_routers.keys() - routers.keys()):
        drift.extra.append(f"router {name}")
        nb.delete_router(name)
    for name in sorted(held_groups.keys() - groups.keys()):
        drift.extra.append(f"port group {name}")
        nb.delete_port_group(name)
    for name in sorted(held_ports.keys() - wanted_ports.keys()):
        drift.extra.append(f"port {name}")
        nb.delete_switch_port(name)
    for name in sorted(held.keys() - networks.keys()):
        drift.extra.append(f"switch {name}")
        nb.delete_switch(name)

    _settle_statuses()
    if drift:
        logger.warning("OVN drift repaired: %s", drift.as_dict())
        audit_record(
            actor=RECONCILER, action="network.drift_repaired", target_type="ovn",
            target_id="northbound", details=drift.as_dict(),
        )  # fmt: skip
    return drift


def _settle_statuses() -> None:
    """After a full pass OVN says what the database says: nothing is building any more."""
    pending = Q(status=Realisation.BUILDING) | Q(status=Realisation.ERROR)
    for model in (Network, Port, Router, FloatingIP):
        model.objects.filter(pending).update(status=Realisation.ACTIVE, fault="")

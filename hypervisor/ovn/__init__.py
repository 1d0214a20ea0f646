"""OVN's northbound database as the control plane's network driver (DESIGN §7): specs
(`specs`), security group rules → ACLs (`acls`), and `Northbound`, the idempotent writer and
reader of our rows. Nothing here imports Django."""

from hypervisor.ovn.acls import acls_for
from hypervisor.ovn.northbound import Northbound
from hypervisor.ovn.specs import (
    AclRuleSpec,
    AclSpec,
    DhcpSpec,
    InvalidSpec,
    NatSpec,
    NbInventory,
    PortGroupSpec,
    PortGroupState,
    RouterPortSpec,
    RouterSpec,
    SwitchPortSpec,
    SwitchSpec,
    localnet_port,
    port_group_name,
    router_interface,
)

__all__ = [
    "AclRuleSpec",
    "AclSpec",
    "DhcpSpec",
    "InvalidSpec",
    "NatSpec",
    "NbInventory",
    "Northbound",
    "PortGroupSpec",
    "PortGroupState",
    "RouterPortSpec",
    "RouterSpec",
    "SwitchPortSpec",
    "SwitchSpec",
    "acls_for",
    "localnet_port",
    "port_group_name",
    "router_interface",
]

"""The network models (DESIGN §7): networks, subnets, ports and their fixed addresses,
routers, security groups and floating IPs. The control plane's rows are the intent and the
IPAM; OVN's northbound database is written from them.

A port names the device it is bound to by id (`device_id`, `device_owner`), as Neutron does:
the network app never imports the apps whose devices it serves.
"""

from network.models.floating_ips import FloatingIP
from network.models.networks import Network, Subnet
from network.models.ports import FixedIP, Port
from network.models.routers import Router
from network.models.security_groups import SecurityGroup, SecurityGroupRule

__all__ = [
    "FixedIP",
    "FloatingIP",
    "Network",
    "Port",
    "Router",
    "SecurityGroup",
    "SecurityGroupRule",
    "Subnet",
]

"""The libvirt implementation of the hypervisor boundary (DESIGN §5): `LibvirtHypervisor`.

connection.py   one long-lived connection per URI, the event loop, bounded calls, errors
domain_xml.py   DomainSpec → domain XML (lxml only) and our <metadata> back
storage.py      directory pools, volumes (qcow2 overlays), resize, wipe and delete
network.py      isolated networks with DHCP and static leases
hypervisor.py   LibvirtHypervisor, the `Hypervisor` interface on top of them

Nothing here imports Django (hypervisor/ruff.toml).
"""

from hypervisor.libvirt.hypervisor import LibvirtHypervisor

__all__ = ["LibvirtHypervisor"]

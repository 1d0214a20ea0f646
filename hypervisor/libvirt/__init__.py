"""The libvirt implementation of the hypervisor boundary (DESIGN §5): `LibvirtHypervisor`.

connection.py   one long-lived connection per URI, the event loop, bounded calls, errors
domain_xml.py   DomainSpec → domain XML (lxml only) and our <metadata> back
storage.py      directory pools, volumes (qcow2 overlays), resize, wipe and delete
network.py      isolated networks with DHCP and static leases
devices.py      hot-plugged devices: each definition on its own, detach and wait
nics.py         hot-plug of NICs
disks.py        hot-plug of disks (attached volumes) and their live resize
hypervisor.py   LibvirtHypervisor, the `Hypervisor` interface on top of them

Nothing here imports Django (hypervisor/ruff.toml).
"""

from hypervisor.libvirt.hypervisor import LibvirtHypervisor

__all__ = ["LibvirtHypervisor"]

"""`manage.py bootstrap_local_host`: the embedded default's hypervisor and flavors.

Declares the demo zone (fr-demo-1, jurisdiction FR) and registers this machine's libvirtd as
its only host, if they are not there yet. The domain type is probed: kvm where it really
works, qemu (TCG) otherwise.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from compute.models import Flavor
from compute.services.flavors import flavor_create
from hosts import selectors as host_selectors
from hosts.models import Host
from hosts.services.onboarding import HostRegistration, host_onboard
from hosts.services.zones import zone_create
from iaas.audit import Actor
from iaas.errors import DomainError

DEMO_ZONE = "fr-demo-1"
# The embedded default's flavors: small enough for TCG guests on a laptop.
DEFAULT_FLAVORS = [("a1.tiny", 1, 256, 1), ("a1.small", 1, 512, 2), ("a1.medium", 2, 1024, 4)]


class Command(BaseCommand):
    help = "Register the local libvirtd as the host of the demo zone."

    def handle(self, *args: Any, **options: Any) -> None:
        actor = Actor.system("bootstrap_local_host")
        zone = host_selectors.zone_find(DEMO_ZONE)
        if zone is None:
            zone = zone_create(
                actor=actor,
                region="fr-demo",
                name=DEMO_ZONE,
                site="this machine",
                city="Paris",
                country="FR",
                jurisdiction="FR",
            )
        host = Host.objects.filter(name=settings.LOCAL_HOST_NAME).first()
        if host is None:
            registration = HostRegistration(
                name=settings.LOCAL_HOST_NAME,
                zone=zone,
                libvirt_uri=settings.LOCAL_LIBVIRT_URI,
                storage_root=settings.LOCAL_STORAGE_ROOT,
                ovs_bridge=settings.LOCAL_OVS_BRIDGE,
                ovs_datapath=settings.LOCAL_OVS_DATAPATH,
            )
            try:
                host = host_onboard(actor=actor, registration=registration)
            except DomainError as exc:
                raise CommandError(f"could not register the local libvirtd: {exc.message}") from exc
        else:
            # The local host's OVS is this machine's: follow the settings (a database made
            # before hosts had these fields says "system").
            Host.objects.filter(pk=host.pk).update(
                ovs_bridge=settings.LOCAL_OVS_BRIDGE, ovs_datapath=settings.LOCAL_OVS_DATAPATH
            )
        if not Flavor.objects.exists():
            for name, vcpus, memory_mb, disk_gb in DEFAULT_FLAVORS:
                flavor_create(
                    actor=actor, name=name, vcpus=vcpus, memory_mb=memory_mb, disk_gb=disk_gb
                )
        self.stdout.write(
            f"hypervisor: {host.name} in {zone.name} ({host.domain_type}, {host.cpus} CPUs, "
            f"{host.memory_mb} MiB, security driver {host.security_driver or 'not reported yet'}) "
            f"at {host.libvirt_uri}"
        )

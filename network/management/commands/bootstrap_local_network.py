"""`manage.py bootstrap_local_network`: the embedded default's networks (make run).

The operators' external network `public` on this machine's provider bridge (from the
settings scripts/ovn.sh exports: ANDROMEDE_OVN_PROVIDER_NETWORK, _CIDR, _GATEWAY), then, for
the demo tenant, its default network behind a router with a gateway there, and rules in its
default security group letting the machine in by SSH and ping — so that a newcomer can boot
an instance, give it a floating IP and `ssh` into it. Idempotent."""

from __future__ import annotations

import ipaddress
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from iaas.audit import Actor
from network.models import Network, SecurityGroupRule
from network.services import realise
from network.services.convergence import reconcile
from network.services.networks import default_network, provider_network_create
from network.services.security_groups import default_security_group, security_group_rule_create
from network.services.subnets import subnet_create
from tenants.models import Tenant

EXTERNAL = "public"
DEMO_TENANT = "demo"


class Command(BaseCommand):
    help = "Create make run's external network and the demo tenant's network and router."

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.OVN_NB_REMOTE or not settings.OVN_PROVIDER_CIDR:
            raise CommandError("no OVN settings: run scripts/ovn.sh start first (make run does)")
        actor = Actor.system("bootstrap_local_network")
        with realise.converged_by_caller():
            public = self._external(actor)
            tenant = Tenant.objects.filter(slug=DEMO_TENANT).first()
            if tenant is not None:
                self._demo(actor, tenant)
        # make run starts its broker and workers after this command: write OVN now, as a
        # control worker would (its tasks, sent meanwhile, find nothing left to do).
        drift = reconcile()
        if drift:
            self.stdout.write(f"networks written to OVN: {len(drift.missing)} object(s)")
        subnet = public.subnets.get()
        pool = subnet.allocation_pools[0]
        self.stdout.write(
            f"networks: external {public.name} {subnet.cidr} (floating IPs {pool['start']} to "
            f"{pool['end']}, this machine is {subnet.gateway_ip})"
        )

    def _external(self, actor: Actor) -> Network:
        found = Network.objects.filter(tenant=None, name=EXTERNAL).first()
        if found is not None:
            return found
        cidr = ipaddress.ip_network(settings.OVN_PROVIDER_CIDR)
        gateway = ipaddress.ip_address(settings.OVN_PROVIDER_GATEWAY)
        hosts = [h for h in cidr.hosts() if h != gateway]
        with transaction.atomic():
            public = provider_network_create(
                actor=actor, name=EXTERNAL, physical_network=settings.OVN_PROVIDER_NETWORK
            )
            subnet_create(
                actor=actor, tenant=None, network=public, cidr=str(cidr), name=EXTERNAL,
                gateway_ip=str(gateway),
                allocation_pools=[{"start": str(hosts[0]), "end": str(hosts[-1])}],
            )  # fmt: skip
        return public

    def _demo(self, actor: Actor, tenant: Tenant) -> None:
        with transaction.atomic():
            Tenant.objects.select_for_update().get(pk=tenant.pk)
            default_network(actor=actor, tenant=tenant)
            group = default_security_group(actor=actor, tenant=tenant)
            prefix = str(ipaddress.ip_network(settings.OVN_PROVIDER_CIDR))
            for protocol, ports in (("tcp", (22, 22)), ("icmp", (None, None))):
                if SecurityGroupRule.objects.filter(
                    security_group=group, direction="ingress", protocol=protocol,
                    remote_ip_prefix=prefix,
                ).exists():  # fmt: skip
                    continue
                security_group_rule_create(
                    actor=actor, group=group, direction="ingress", protocol=protocol,
                    port_range_min=ports[0], port_range_max=ports[1], remote_ip_prefix=prefix,
                    description="make run: this machine may reach the demo's instances",
                )  # fmt: skip

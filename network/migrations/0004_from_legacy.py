"""Every legacy tenant network becomes the tenant's `default` network with one subnet (its
CIDR, gateway .1, the rest as the pool, the rotation cursor kept); every legacy port a port
of that network bound to its instance, with the same MAC and address (instances keep them).
Ports are made for their instance (they go with it) and join the tenant's default security
group, made here as new tenants get it. The reverse copies them back."""

import ipaddress
import uuid

from django.db import migrations


def forwards(apps, schema_editor):
    LegacyTenantNetwork = apps.get_model("network", "LegacyTenantNetwork")
    LegacyPort = apps.get_model("network", "LegacyPort")
    Network = apps.get_model("network", "Network")
    Subnet = apps.get_model("network", "Subnet")
    Port = apps.get_model("network", "Port")
    FixedIP = apps.get_model("network", "FixedIP")
    SecurityGroup = apps.get_model("network", "SecurityGroup")
    SecurityGroupRule = apps.get_model("network", "SecurityGroupRule")
    for legacy in LegacyTenantNetwork.objects.all().order_by("pk"):
        cidr = ipaddress.ip_network(legacy.cidr)
        hosts = list(cidr.hosts())
        gateway = hosts[0]
        network = Network.objects.create(
            id=uuid.uuid4(),
            tenant_id=legacy.tenant_id,
            name="default",
            is_default=True,
            mtu=1442,
            status="building",
        )
        subnet = Subnet.objects.create(
            id=uuid.uuid4(),
            network=network,
            tenant_id=legacy.tenant_id,
            name="default",
            cidr=str(cidr),
            gateway_ip=str(gateway),
            allocation_pools=[{"start": str(hosts[1]), "end": str(hosts[-1])}]
            if len(hosts) > 1
            else [],
            next_index=legacy.next_host_index,
        )
        group = SecurityGroup.objects.create(
            id=uuid.uuid4(),
            tenant_id=legacy.tenant_id,
            name="default",
            is_default=True,
            description="Ingress from members of this group only; all egress.",
        )
        SecurityGroupRule.objects.create(
            id=uuid.uuid4(),
            security_group=group,
            tenant_id=legacy.tenant_id,
            direction="ingress",
            ethertype="IPv4",
            remote_group=group,
        )
        SecurityGroupRule.objects.create(
            id=uuid.uuid4(),
            security_group=group,
            tenant_id=legacy.tenant_id,
            direction="egress",
            ethertype="IPv4",
        )
        for old in LegacyPort.objects.filter(network=legacy).order_by("pk"):
            port = Port.objects.create(
                id=uuid.uuid4(),
                network=network,
                tenant_id=legacy.tenant_id,
                mac=old.mac,
                device_id=old.device_id,
                device_owner="compute:instance",
                delete_with_device=True,
                status="building",
            )
            port.security_groups.add(group)
            FixedIP.objects.create(port=port, subnet=subnet, ip=old.ip)


def backwards(apps, schema_editor):
    LegacyTenantNetwork = apps.get_model("network", "LegacyTenantNetwork")
    LegacyPort = apps.get_model("network", "LegacyPort")
    Network = apps.get_model("network", "Network")
    FixedIP = apps.get_model("network", "FixedIP")
    for network in Network.objects.filter(is_default=True).exclude(tenant=None):
        subnet = network.subnets.order_by("created_at").first()
        if subnet is None:
            continue
        legacy = LegacyTenantNetwork.objects.create(
            tenant_id=network.tenant_id, cidr=subnet.cidr, next_host_index=subnet.next_index
        )
        for fixed in FixedIP.objects.filter(subnet=subnet).select_related("port"):
            if fixed.port.device_owner == "compute:instance" and fixed.port.device_id:
                LegacyPort.objects.create(
                    network=legacy,
                    device_id=fixed.port.device_id,
                    mac=fixed.port.mac,
                    ip=fixed.ip,
                )


class Migration(migrations.Migration):
    dependencies = [("network", "0003_networking")]

    operations = [migrations.RunPython(forwards, backwards)]

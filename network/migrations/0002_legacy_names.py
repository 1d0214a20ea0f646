"""The placeholder network models (one isolated network per tenant, one address per port)
step aside under legacy names: 0003 creates the real models (networks, subnets, ports with
fixed addresses, routers, security groups, floating IPs), 0004 copies every tenant network
and port into them (instances keep their addresses and MACs), 0005 drops the legacy ones."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("network", "0001_initial")]

    operations = [
        migrations.RenameModel("Port", "LegacyPort"),
        migrations.RenameModel("TenantNetwork", "LegacyTenantNetwork"),
    ]

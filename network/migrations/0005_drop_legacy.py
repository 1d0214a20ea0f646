"""The legacy network tables, copied by 0004, go."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("network", "0004_from_legacy")]

    operations = [
        migrations.DeleteModel(name="LegacyPort"),
        migrations.DeleteModel(name="LegacyTenantNetwork"),
    ]

"""A port names the instance it is bound to by id, not by a foreign key (DESIGN §1: network
never imports compute): step 1, the new column, filled from the old one."""

from django.db import migrations, models
from django.db.models import F


def copy_instance_to_device(apps, schema_editor):
    Port = apps.get_model("compute", "Port")
    Port.objects.update(device_id=F("instance_id"))


class Migration(migrations.Migration):
    dependencies = [("compute", "0011_orphan_volumes")]

    operations = [
        migrations.AddField(model_name="port", name="device_id", field=models.UUIDField(null=True)),
        migrations.RunPython(copy_instance_to_device, migrations.RunPython.noop),
    ]

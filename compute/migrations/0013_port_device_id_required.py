"""A port names the instance it is bound to by id: step 2, the foreign key goes (in a
migration of its own, so PostgreSQL alters the table outside the data copy's transaction)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("compute", "0012_port_device_id")]

    operations = [
        migrations.RemoveField(model_name="port", name="instance"),
        migrations.AlterField(
            model_name="port",
            name="device_id",
            field=models.UUIDField(db_index=True, help_text="The instance the port is bound to."),
        ),
    ]

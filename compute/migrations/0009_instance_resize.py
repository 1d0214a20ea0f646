import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("compute", "0008_server_groups"),
    ]

    operations = [
        migrations.AddField(
            model_name="instance",
            name="previous_flavor",
            field=models.ForeignKey(
                blank=True,
                help_text="The flavor before a resize awaiting confirm or revert.",
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="compute.flavor",
            ),
        ),
        migrations.AlterField(
            model_name="instance",
            name="status",
            field=models.CharField(
                choices=[
                    ("building", "Building"),
                    ("active", "Active"),
                    ("stopped", "Stopped"),
                    ("error", "Error"),
                    ("deleting", "Deleting"),
                    ("deleted", "Deleted"),
                    ("resizing", "Resizing"),
                    ("verify_resize", "Verify Resize"),
                ],
                default="building",
                max_length=16,
            ),
        ),
    ]

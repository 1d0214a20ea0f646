"""On PostgreSQL, refuse UPDATE and DELETE on the audit log at the database level.

The application already refuses them; the trigger also stops a bug or a shell session from
rewriting history. A privileged user can still disable it, which is why the log is also
hash-chained and checked by `manage.py audit_verify`.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION iaas_auditevent_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER iaas_auditevent_append_only
    BEFORE UPDATE OR DELETE ON iaas_auditevent
    FOR EACH ROW EXECUTE FUNCTION iaas_auditevent_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS iaas_auditevent_append_only ON iaas_auditevent;
DROP FUNCTION IF EXISTS iaas_auditevent_append_only();
"""


def create_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("iaas", "0001_initial")]

    operations = [migrations.RunPython(create_trigger, drop_trigger)]

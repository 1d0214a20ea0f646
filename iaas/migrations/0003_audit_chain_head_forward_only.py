"""On PostgreSQL, the audit chain head only moves forward (review M2).

The head row (`iaas_auditchainhead`, pk 1) names the newest event and its hash; `audit_verify`
compares it with the chain, so moving it back after deleting the tail used to hide the
deletion. This trigger lets it be created only at the genesis hash, and changed only to a
newer event that exists, carries that hash and links to the old head (one step of
`audit_record`); it can never be deleted. Together with the append-only trigger on
`iaas_auditevent` (0002) and a runtime database role that neither owns these tables nor holds
UPDATE, DELETE or TRUNCATE on the log (`iaas.db_roles`), the application's own credentials
cannot rewrite history. The tables' owner still can (it may disable triggers): that is what
the signed checkpoints kept outside the database catch (`iaas.audit.checkpoints`).
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION iaas_auditchainhead_forward_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'the audit chain head cannot be removed';
    END IF;
    IF NEW.id <> 1 THEN
        RAISE EXCEPTION 'the audit chain head is the row with id 1';
    END IF;
    IF TG_OP = 'INSERT' THEN
        IF NEW.last_event_id IS NOT NULL OR NEW.last_hash <> repeat('0', 64) THEN
            RAISE EXCEPTION 'a new audit chain head starts at the genesis hash';
        END IF;
        RETURN NEW;
    END IF;
    IF NEW.id <> OLD.id OR NEW.last_event_id IS NULL
       OR (OLD.last_event_id IS NOT NULL AND NEW.last_event_id <= OLD.last_event_id) THEN
        RAISE EXCEPTION 'the audit chain head only moves forward';
    END IF;
    IF NOT EXISTS (
        SELECT 1 FROM iaas_auditevent
        WHERE id = NEW.last_event_id AND hash = NEW.last_hash AND prev_hash = OLD.last_hash
    ) THEN
        RAISE EXCEPTION 'the audit chain head must move to the next event, with its hash';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER iaas_auditchainhead_forward_only
    BEFORE INSERT OR UPDATE OR DELETE ON iaas_auditchainhead
    FOR EACH ROW EXECUTE FUNCTION iaas_auditchainhead_forward_only();
"""

DROP = """
DROP TRIGGER IF EXISTS iaas_auditchainhead_forward_only ON iaas_auditchainhead;
DROP FUNCTION IF EXISTS iaas_auditchainhead_forward_only();
"""


def create_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("iaas", "0002_audit_append_only_trigger")]

    operations = [migrations.RunPython(create_trigger, drop_trigger)]

"""PostgreSQL refuses UPDATE and DELETE on the audit trail: a trigger, whoever the client is
(only the table's owner could drop or disable it, and verify_audit would then find the damage).
SQLite (the `make run` default) has no such guard: the hash chain still shows any change."""

from django.db import migrations

CREATE = """
CREATE FUNCTION radiology_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'The audit trail is append-only: % of an event is refused.', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER radiology_auditevent_append_only
    BEFORE UPDATE OR DELETE ON radiology_auditevent
    FOR EACH ROW EXECUTE FUNCTION radiology_audit_append_only();
"""
DROP = """
DROP TRIGGER IF EXISTS radiology_auditevent_append_only ON radiology_auditevent;
DROP FUNCTION IF EXISTS radiology_audit_append_only();
"""


def on_postgresql(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, params=None)  # no placeholders: RAISE uses % itself

    return run


class Migration(migrations.Migration):
    dependencies = [("radiology", "0013_audit_chain")]

    operations = [migrations.RunPython(on_postgresql(CREATE), on_postgresql(DROP))]

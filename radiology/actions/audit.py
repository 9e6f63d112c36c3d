"""The audit trail: every action that changes clinical data, every read of patient data and every
refusal writes one event, appended to the hash chain (radiology/audit_chain.py)."""

from django.db import connection, transaction
from django.utils import timezone

from radiology.audit_chain import chain_hash, json_value
from radiology.models import AuditChainHead, AuditEvent


def locked_chain_head_hash():
    """The chain's last hash, its head row locked until the transaction ends. Updating the row
    before reading it takes the write lock on PostgreSQL (the row) and on SQLite (the database)."""
    table = AuditChainHead._meta.db_table
    with connection.cursor() as cursor:
        while True:
            cursor.execute(f"UPDATE {table} SET last_event_id = last_event_id WHERE id = 1 RETURNING last_hash")  # noqa: S608 (our table's name)
            row = cursor.fetchone()
            if row is not None:
                return row[0]
            AuditChainHead.objects.get_or_create(pk=1)  # a flushed test database has no head yet


def audit(actor, action, obj, before=None, after=None, *, object_type="", object_id=""):
    """Append an event about `obj` (or, without one, about `object_type` and `object_id`: a list
    read, say) to the chain, in the caller's transaction if there is one."""
    # No savepoint: an event that cannot be written fails the caller's whole transaction.
    with transaction.atomic(savepoint=False):
        last_hash = locked_chain_head_hash()
        event = AuditEvent(
            actor=actor if actor and actor.is_authenticated else None,
            action=action,
            object_type=type(obj).__name__ if obj is not None else object_type,
            object_id=str(obj.pk) if obj is not None else object_id,
            before=json_value(before),
            after=json_value(after),
            created_at=timezone.now(),
            prev_hash=last_hash,
        )
        event.hash = chain_hash(event)
        event.save()
        AuditChainHead.objects.filter(pk=1).update(last_event_id=event.pk, last_hash=event.hash)
    return event

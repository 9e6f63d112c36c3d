"""The audit trail: every action that changes clinical data, and every view of patient data, writes one event."""

from radiology.models import AuditEvent


def audit(actor, action, obj, before=None, after=None):
    return AuditEvent.objects.create(
        actor=actor if actor and actor.is_authenticated else None,
        action=action,
        object_type=type(obj).__name__ if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        before=before,
        after=after,
    )

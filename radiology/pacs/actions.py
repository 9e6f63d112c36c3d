"""Admin actions on the PACS connection."""

from django.core.exceptions import ValidationError
from django.db import transaction

from radiology.actions.audit import audit
from radiology.pacs.models import PacsInstance


def retry_instance(actor, record: PacsInstance):
    """Forget a conflict (once its cause is fixed, e.g. the patient's record corrected): the next
    poll looks at the instance again."""
    with transaction.atomic():
        record = PacsInstance.objects.select_for_update().get(pk=record.pk)
        if record.outcome != PacsInstance.Outcome.CONFLICT:
            raise ValidationError(
                f"Only conflicts are tried again; this instance was {record.get_outcome_display().lower()}."
            )
        audit(
            actor,
            "pacs.conflict_retried",
            record,
            before={"sop_instance_uid": record.sop_instance_uid, "reason": record.reason},
        )
        record.delete()

"""The outbox: what PneumoScan owes the PACS. Rows are written in the transaction of the result
they report (nothing is lost between the two) and sent with STOW-RS until the PACS has them;
a failed send waits longer each time (backoff), with its error kept for the admin page."""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from pydicom.uid import generate_uid

from radiology.pacs.models import OutboxItem, PacsInstance

log = logging.getLogger(__name__)

RETRY_FIRST_SECONDS = 5
RETRY_MAX_SECONDS = 15 * 60
SEND_AT_MOST = 100  # per run; the beat schedule's next run sends the rest


def from_pacs(scan) -> bool:
    """Results go back only for scans whose instance is in the PACS (pulled from it)."""
    return bool(scan.study_instance_uid) and PacsInstance.objects.filter(scan=scan).exists()


def add_prediction_results(prediction):
    """Inside the prediction's transaction: the AI's report and the overlay, for a scan from the PACS."""
    if from_pacs(prediction.scan):
        for kind in (OutboxItem.Kind.AI_REPORT, OutboxItem.Kind.OVERLAY):
            new_item(kind, prediction.scan, prediction=prediction)
        transaction.on_commit(send_soon)


def add_review_result(review):
    """Inside the review's transaction: the doctor's verified report, for a scan from the PACS."""
    if from_pacs(review.scan):
        new_item(OutboxItem.Kind.DOCTOR_REPORT, review.scan, review=review)
        transaction.on_commit(send_soon)


def new_item(kind, scan, **result):
    return OutboxItem.objects.create(
        kind=kind,
        scan=scan,
        study_instance_uid=scan.study_instance_uid,
        series_instance_uid=generate_uid(),
        sop_instance_uid=generate_uid(),
        **result,
    )


def send_soon():
    """Ask a worker to send now; with the broker down the beat schedule's next run sends instead."""
    from radiology.pacs.tasks import send_outbox

    try:
        send_outbox.apply_async(retry=False)
    except Exception as error:  # kombu raises transport-specific errors
        log.warning("PACS results wait for the next scheduled send: the task broker is unreachable (%s)", error)


def retry_delay(attempts: int) -> timedelta:
    return timedelta(seconds=min(RETRY_FIRST_SECONDS * 2 ** max(attempts - 1, 0), RETRY_MAX_SECONDS))


def send_due(client=None) -> dict:
    """Send the items that are due, oldest first; -> {"sent": n, "failed": n}. An unreachable
    PACS ends the run at its first failure: the others keep their turn for the next run."""
    from radiology.pacs.client import pacs_client
    from radiology.pacs.ingest import PACS_ERRORS

    counts = {"sent": 0, "failed": 0}
    for _ in range(SEND_AT_MOST):
        item = claim_next_due()
        if item is None:
            break
        try:
            client = client or pacs_client()
            store(client, item)
        except PACS_ERRORS as error:
            failed(item, f"The PACS did not take it: {type(error).__name__}: {error}")
            counts["failed"] += 1
            break
        except Exception as error:  # building the object failed (e.g. the image file is gone)
            log.exception("PACS outbox item %s could not be built", item.pk)
            failed(item, f"Could not be built: {type(error).__name__}: {error}")
            counts["failed"] += 1
            continue
        now = timezone.now()
        OutboxItem.objects.filter(pk=item.pk).update(
            sent_at=now, last_attempt_at=now, attempts=item.attempts + 1, last_error=""
        )
        counts["sent"] += 1
    return counts


def claim_next_due():
    """The oldest due item, taken for this run by compare-and-set: its next attempt is moved past
    the send's longest time, so no other run takes it meanwhile, and no transaction stays open
    while the PACS answers. A run that dies mid-send leaves the item due again after that."""
    now = timezone.now()
    due = OutboxItem.objects.filter(sent_at__isnull=True, next_attempt_at__lte=now)
    for pk in due.order_by("next_attempt_at", "pk").values_list("pk", flat=True)[:10]:
        held_until = now + timedelta(seconds=2 * settings.PACS_TIMEOUT_SECONDS + 60)
        if due.filter(pk=pk).update(next_attempt_at=held_until):
            return OutboxItem.objects.select_related("scan", "prediction__model_version", "review__doctor").get(pk=pk)
    return None


class StoreRefused(ConnectionError):
    """The PACS answered but did not store the instance (a STOW-RS failure in its answer)."""


def store(client, item):
    from radiology.pacs.results import build

    answer = client.store_instances([build(item)], study_instance_uid=item.study_instance_uid)
    failures = answer.get("FailedSOPSequence") if answer is not None else None
    if failures:
        reasons = ", ".join(str(failure.get("FailureReason", "?")) for failure in failures)
        raise StoreRefused(f"STOW-RS failure reason {reasons}")


def failed(item, error: str):
    item.attempts += 1
    item.last_attempt_at = timezone.now()
    item.next_attempt_at = item.last_attempt_at + retry_delay(item.attempts)
    item.last_error = error[:2000]
    item.save(update_fields=["attempts", "last_attempt_at", "next_attempt_at", "last_error"])
    log.warning(
        "PACS outbox item %s (%s) failed, next attempt at %s: %s", item.pk, item.kind, item.next_attempt_at, error
    )

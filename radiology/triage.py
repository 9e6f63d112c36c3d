"""The doctor's queue: most likely pneumonia first, but no scan waits past the cap.

Sorting by the AI score alone shortens the mean wait and lengthens the longest ones, so a scan
that has waited longer than TRIAGE_MAX_WAIT_MINUTES since upload jumps ahead, oldest first.
"""

from datetime import timedelta

from django.conf import settings
from django.db.models import Case, F, IntegerField, Value, When
from django.utils import timezone

from radiology.models import Scan


def review_queue(now=None):
    now = now or timezone.now()
    overdue_before = now - timedelta(minutes=settings.TRIAGE_MAX_WAIT_MINUTES)
    overdue = When(uploaded_at__lte=overdue_before, then=Value(0))
    return (
        Scan.objects.filter(status=Scan.Status.PREDICTED, prediction__isnull=False)
        .select_related("patient", "prediction", "prediction__model_version")
        .annotate(
            overdue_rank=Case(overdue, default=Value(1), output_field=IntegerField()),
            overdue_since=Case(When(uploaded_at__lte=overdue_before, then=F("uploaded_at")), default=None),
        )
        .order_by(
            "overdue_rank", F("overdue_since").asc(nulls_last=True), "-prediction__probability", "uploaded_at", "pk"
        )
    )

"""The admin's page on the PACS connection: the poll, what was pulled, conflicts, the outbox."""

from django.conf import settings
from django.db.models import Count
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET, require_POST

from radiology.models import Scan
from radiology.pacs import actions
from radiology.pacs.client import pacs_configured
from radiology.pacs.models import OutboxItem, PacsInstance, PollState
from radiology.permissions import require
from radiology.web.views import act_and_report, page_of

RECENT = 20


@require("view_pacs_status")
@require_GET
def pacs_status(request):
    outcomes = dict(PacsInstance.objects.values_list("outcome").annotate(n=Count("pk")))
    return render(
        request,
        "radiology/pacs_status.html",
        {
            "configured": pacs_configured(),
            "url": settings.PACS_DICOMWEB_URL,
            "poll_seconds": settings.PACS_POLL_SECONDS,
            "state": PollState.current(),
            "instance_counts": [(label, outcomes.get(value, 0)) for value, label in PacsInstance.Outcome.choices],
            "pacs_scans": Scan.objects.filter(source=Scan.Source.PACS).count(),
            "conflicts": page_of(request, PacsInstance.objects.filter(outcome=PacsInstance.Outcome.CONFLICT)),
            "skipped": PacsInstance.objects.filter(outcome=PacsInstance.Outcome.SKIPPED)[:RECENT],
            "outbox_sent": OutboxItem.objects.filter(sent_at__isnull=False).count(),
            "outbox_waiting": OutboxItem.objects.filter(sent_at__isnull=True)
            .select_related("scan__patient")
            .order_by("next_attempt_at", "pk")[:RECENT],
            "outbox_waiting_count": OutboxItem.objects.filter(sent_at__isnull=True).count(),
        },
    )


@require("view_pacs_status")
@require_POST
def retry_conflict(request, pk):
    record = get_object_or_404(PacsInstance, pk=pk)
    return act_and_report(
        request,
        lambda: actions.retry_instance(request.user, record),
        f"Instance {record.sop_instance_uid} will be looked at again at the next poll.",
        "pacs_status",
    )

"""The admin's audit page: the trail filtered by who, what, which record and when, and the same
selection as CSV. Exporting the trail is itself recorded."""

import csv

from django.http import HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from radiology.actions.audit import audit
from radiology.models import AuditEvent
from radiology.permissions import require
from radiology.web.forms import AuditFilterForm
from radiology.web.views import page_of

CSV_COLUMNS = ["id", "time", "actor", "action", "object_type", "object_id", "before", "after", "prev_hash", "hash"]
# A spreadsheet runs a cell starting with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def selected_events(form):
    events = AuditEvent.objects.select_related("actor").order_by("-pk")
    return form.filter(events) if form.is_valid() else events.none()


@require("view_audit")
@require_GET
def audit_trail(request):
    form = AuditFilterForm(request.GET)
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "radiology/audit.html",
        {"form": form, "page": page_of(request, selected_events(form), size=50), "extra_query": query.urlencode()},
        status=200 if form.is_valid() else 400,
    )


class Echo:
    """csv.writer's file: each row is handed straight to the response."""

    def write(self, value):
        return value


def spreadsheet_safe(value):
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_rows(events):
    writer = csv.writer(Echo())
    yield writer.writerow(CSV_COLUMNS)
    for event in events.iterator(chunk_size=2000):
        row = [
            event.pk,
            event.created_at.isoformat(),
            event.actor.get_username() if event.actor else "",
            event.action,
            event.object_type,
            event.object_id,
            event.before,
            event.after,
            event.prev_hash,
            event.hash,
        ]
        yield writer.writerow([spreadsheet_safe(cell) for cell in row])


@require("view_audit")
@require_GET
def audit_trail_csv(request):
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        return HttpResponseBadRequest(" ".join(m for errors in form.errors.values() for m in errors))
    audit(request.user, "audit.exported", None, after={"filters": form.used_filters()})
    response = StreamingHttpResponse(csv_rows(selected_events(form)), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="audit-trail.csv"'
    response["Cache-Control"] = "private, no-store"
    return response

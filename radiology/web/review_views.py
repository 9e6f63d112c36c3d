"""The doctor's pages (review queue, review, patient history) and the permission-checked images.

Patient images never have a public URL: these views check the role, write an audit event for
every look at a patient's image, and stream the file from storage.
"""

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Prefetch
from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from radiology import session_limits
from radiology.actions import clinical, reading
from radiology.models import Patient, Review, Scan
from radiology.permissions import require
from radiology.private_files import heatmap_response, viewable_image_response
from radiology.triage import ReviewQueue
from radiology.web.forms import ReviewForm
from radiology.web.views import page_of


def queue_page_columns(scans):
    """What the queue page shows of each scan, and nothing more."""
    return scans.select_related("patient", "prediction", "read_by").only(
        "pk",
        "uploaded_at",
        "patient__name",
        "patient__mrn",
        "prediction__probability",
        "prediction__triage_score",
        "prediction__label",
        "prediction__intended_use",
        "read_until",
        "read_by__username",
    )


@require("review_scans")
@require_GET
def queue(request):
    now = timezone.now()
    return render(
        request,
        "radiology/review_queue.html",
        {
            "page": page_of(request, ReviewQueue(now, narrow=queue_page_columns)),
            "now": now,
            "wait_cap_minutes": settings.TRIAGE_MAX_WAIT_MINUTES,
        },
    )


@require("review_scans")
@require_GET
def review_next(request):
    """The next scan nobody else reads, claimed for this doctor (after `?after=`, the scan they leave)."""
    after = request.GET.get("after", "")
    scan_id = reading.next_scan_to_read(request.user, after=int(after) if after.isdigit() else None)
    return redirect("review", pk=scan_id) if scan_id else redirect("review_queue")


@require("review_scans")
@require_POST
@session_limits.passive  # the open page renews the claim by itself: not the person's activity
def reading_heartbeat(request, pk):
    """The open review page keeps its claim: 200 with the new deadline, or 409 naming who reads it now."""
    if reading.claim_for_reading(request.user, pk):
        until = Scan.objects.values_list("read_until", flat=True).get(pk=pk)
        return JsonResponse({"reading": True, "until": until.isoformat()})
    scan = get_object_or_404(Scan.objects.select_related("read_by"), pk=pk)
    reader = reading.reader_of(scan)
    return JsonResponse({"reading": False, "read_by": reader.get_username() if reader else None}, status=409)


@require("review_scans")
@require_POST
@session_limits.passive
def reading_release(request, pk):
    """The page is left (sent by the browser as it goes): others may take the scan at once."""
    reading.release_reading(request.user, pk)
    return HttpResponse(status=204)


@require("review_scans")
@require_http_methods(["GET", "POST"])
def review(request, pk):
    scan = get_object_or_404(
        Scan.objects.select_related("patient", "prediction", "prediction__model_version"),
        pk=pk,
        prediction__isnull=False,
    )
    reading.claim_for_reading(request.user, scan.pk)  # no-op when another doctor reads it
    latest = scan.latest_review()
    form = ReviewForm(request.POST or None, initial={"supersedes": latest.pk if latest else None})
    conflict = None
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        try:
            saved = clinical.review_scan(
                request.user, scan, form.decision_for(scan.prediction), data["note"], supersedes=data["supersedes"]
            )
        except clinical.ReviewConflict as stale:
            # Show what was recorded meanwhile; the doctor's note stays, and deciding again now
            # corrects the review they have just seen.
            conflict, latest = stale, stale.latest
            form = ReviewForm(initial={"note": data["note"], "supersedes": latest.pk if latest else None})
        except ValidationError as error:
            form.add_error(None, error)
        else:
            done = "confirmed" if saved.decision == Review.Decision.CONFIRM else "overridden"
            messages.success(
                request,
                f"Scan {scan.pk} {done}: final label {saved.get_final_label_display().lower()}.",
            )
            following = reading.next_scan_to_read(request.user)
            return redirect("review", pk=following) if following else redirect("review_queue")
    reviews = scan.reviews.select_related("doctor").order_by("created_at", "pk")
    return render(
        request,
        "radiology/review.html",
        {
            "scan": scan,
            "prediction": scan.prediction,
            # Outside intended use the model's output stays hidden until the doctor asks for it (audited).
            "model_output_hidden": scan.prediction.outside_intended_use
            and not clinical.model_output_shown_to(request.user, scan),
            "reviews": reviews,
            "form": form,
            "conflict": conflict,
            "latest_review": latest,
            "has_next": ReviewQueue(reader=request.user).id_after(scan.pk) is not None,
            "other_reader": other_reader(scan, request.user),
            "heartbeat_seconds": settings.REVIEW_CLAIM_MINUTES * 60 // 3,
        },
        status=409 if conflict else 400 if form.errors else 200,
    )


@require("review_scans")
@require_POST
def show_model_output(request, pk):
    """The explicit "show the model's output anyway" of a scan outside intended use (audited)."""
    scan = get_object_or_404(Scan, pk=pk, prediction__isnull=False)
    try:
        clinical.show_model_output(request.user, scan)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    return redirect("review", pk=scan.pk)


def other_reader(scan, doctor):
    """The other doctor reading this scan now, if any."""
    scan = Scan.objects.select_related("read_by").only("read_by", "read_until", "read_by__username").get(pk=scan.pk)
    reader = reading.reader_of(scan)
    return reader if reader is not None and reader != doctor else None


@require("view_patient_history")
@require_GET
def patient_history(request, pk):
    patient = get_object_or_404(Patient, pk=pk)
    scans = (
        patient.scans.select_related("prediction", "prediction__model_version")
        .prefetch_related(
            Prefetch("reviews", queryset=Review.objects.select_related("doctor").order_by("created_at", "pk"))
        )
        .order_by("-uploaded_at")
    )
    return render(request, "radiology/patient_history.html", {"patient": patient, "page": page_of(request, scans)})


@require("view_scan_images")
@require_GET
def scan_image(request, pk):
    return viewable_image_response(request, get_object_or_404(Scan, pk=pk))


@require("view_heatmaps")
@require_GET
def scan_heatmap(request, pk):
    return heatmap_response(
        request, get_object_or_404(Scan.objects.select_related("prediction"), pk=pk, prediction__isnull=False)
    )

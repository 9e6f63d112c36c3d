"""The doctor's pages (review queue, review, patient history) and the permission-checked images.

Patient images never have a public URL: these views check the role, write an audit event for
every look at a patient's image, and stream the file from storage.
"""

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from radiology.actions import clinical
from radiology.models import Patient, Review, Scan
from radiology.permissions import require
from radiology.private_files import heatmap_response, viewable_image_response
from radiology.triage import ReviewQueue
from radiology.web.forms import ReviewForm
from radiology.web.views import page_of


def queue_page_columns(scans):
    """What the queue page shows of each scan, and nothing more."""
    return scans.select_related("patient", "prediction").only(
        "pk", "uploaded_at", "patient__name", "patient__mrn", "prediction__probability", "prediction__label"
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
    scan_id = ReviewQueue().first_id()
    return redirect("review", pk=scan_id) if scan_id else redirect("review_queue")


@require("review_scans")
@require_http_methods(["GET", "POST"])
def review(request, pk):
    scan = get_object_or_404(
        Scan.objects.select_related("patient", "prediction", "prediction__model_version"),
        pk=pk,
        prediction__isnull=False,
    )
    latest = scan.latest_review()
    form = ReviewForm(request.POST or None, initial={"supersedes": latest.pk if latest else None})
    conflict = None
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        try:
            saved = clinical.review_scan(
                request.user, scan, data["decision"], data["note"], supersedes=data["supersedes"]
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
                f"Scan {scan.pk} of {scan.patient.name} {done}: final label {saved.get_final_label_display().lower()}.",
            )
            following = ReviewQueue().first_id()
            return redirect("review", pk=following) if following else redirect("review_queue")
    reviews = scan.reviews.select_related("doctor").order_by("created_at", "pk")
    return render(
        request,
        "radiology/review.html",
        {
            "scan": scan,
            "prediction": scan.prediction,
            "reviews": reviews,
            "form": form,
            "conflict": conflict,
            "latest_review": latest,
            "next_scan_id": ReviewQueue().id_after(scan.pk),
        },
        status=409 if conflict else 400 if form.errors else 200,
    )


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

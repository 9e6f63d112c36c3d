"""The radiographer's pages (patients, upload, scan status) and the start page.

Views translate a request into calls of radiology.actions (and queries) and back; every one is
guarded by radiology.permissions.require, the same checks the API uses.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_http_methods

from radiology import session_limits
from radiology.actions import clinical
from radiology.models import Patient, Scan
from radiology.permissions import can, is_service_account, require
from radiology.web.forms import PatientForm, PatientSearchForm, UploadForm

PAGE_SIZE = 25
MAX_STATUS_IDS = 200
# Where a person starts their day, by what they may do, most specific first.
START_PAGES = [
    ("upload_scans", "patient_list"),
    ("review_scans", "review_queue"),
    ("view_dashboard", "dashboard"),
    ("view_patients", "patient_list"),
    ("view_scan_status", "scan_status"),
    ("requeue_scans", "failed_scans"),
    ("view_model_versions", "model_versions"),
]


def act_and_report(request, action, success, then):
    """Run a domain action for a button: its refusal (a ValidationError) or `success` becomes the
    page's message, and the browser goes back to `then` (a URL name)."""
    try:
        action()
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, success)
    return redirect(then)


def page_of(request, items, size=PAGE_SIZE):
    return Paginator(items, size).get_page(request.GET.get("page"))


@login_required
def home(request):
    if is_service_account(request.user):
        raise PermissionDenied("Service accounts use the API, not the pages.")
    for action, page in START_PAGES:
        if can(request.user, action):
            return redirect(page)
    raise PermissionDenied("Your account has no role yet: ask an administrator to give you one.")


# The patient search's text lives in the session: sent by POST, it never appears in a URL (and
# so in no access log, browser history or Referer header).
PATIENT_SEARCH = "patient_search"


@require("view_patients")
@require_http_methods(["GET", "POST"])
def patient_list(request):
    if request.method == "POST":
        search = PatientSearchForm(request.POST)
        if not search.is_valid():
            return render_patient_list(request, search, "", status=400)
        text = "" if "clear" in request.POST else search.cleaned_data["q"].strip()
        if text:
            request.session[PATIENT_SEARCH] = text
        else:
            request.session.pop(PATIENT_SEARCH, None)
        return redirect("patient_list")  # then ?page= pages through the results
    text = request.session.get(PATIENT_SEARCH, "")
    return render_patient_list(request, PatientSearchForm(initial={"q": text}), text)


def render_patient_list(request, search, text, status=200):
    patients = Patient.objects.matching(text) if text else Patient.objects.all()
    return render(
        request,
        "radiology/patient_list.html",
        {"search": search, "query": text, "page": page_of(request, patients), "form": PatientForm()},
        status=status,
    )


@require("manage_patients")
@require_http_methods(["GET", "POST"])
def patient_create(request):
    form = PatientForm(request.POST or None)
    if form.is_bound and form.is_valid():
        try:
            patient = clinical.create_patient(request.user, **form.cleaned_data)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, "Patient created.")
            return redirect("patient_detail", pk=patient.pk)
    return render(request, "radiology/patient_form.html", {"form": form}, status=400 if form.errors else 200)


@require("view_patients")
@require_GET
def patient_detail(request, pk):
    patient = get_object_or_404(Patient, pk=pk)
    return render(
        request,
        "radiology/patient_detail.html",
        {
            "patient": patient,
            "page": page_of(request, patient.scans.order_by("-uploaded_at")),
        },
    )


@require("upload_scans")
@require_http_methods(["GET", "POST"])
def upload(request):
    if request.method == "GET":
        chosen = (
            get_object_or_404(Patient, pk=request.GET["patient"]) if request.GET.get("patient", "").isdigit() else None
        )
        return render(
            request, "radiology/upload.html", {"form": UploadForm(initial={"patient": chosen}), "chosen": chosen}
        )

    form = UploadForm(request.POST, request.FILES)
    valid = form.is_valid()
    for refused in form.refused:
        messages.error(request, f"{refused.name}: refused, nothing stored. {refused.reason}")
    if form.dicom_patient:
        # The DICOM file names a patient not known here: offer its details to create them.
        offered = {key: form.dicom_patient.get(key, "") for key in ("mrn", "name", "birth_date", "sex")}
        messages.warning(request, form.non_field_errors()[0])
        return render(
            request, "radiology/upload.html", {"form": UploadForm(initial=offered), "dicom_offer": True}, status=400
        )
    if not valid or not form.accepted:
        return render(
            request, "radiology/upload.html", {"form": form, "chosen": form.cleaned_data.get("patient")}, status=400
        )

    patient = form.cleaned_data.get("patient")
    if patient is None:
        try:
            patient = clinical.create_patient(request.user, **form.new_patient)
        except ValidationError as error:
            form.add_error(None, error)
            return render(request, "radiology/upload.html", {"form": form}, status=400)
        messages.success(request, "Patient created.")
    scan_ids = [store_upload(request, patient, accepted) for accepted in form.accepted]
    return redirect(f"{reverse('scan_status')}?ids={','.join(map(str, scan_ids))}")


def store_upload(request, patient, accepted):
    result = clinical.upload_scan(request.user, patient, accepted.name, accepted.data, accepted.decoded)
    if result.duplicate:
        when = timezone.localtime(result.scan.uploaded_at)
        messages.warning(
            request,
            f"{accepted.name}: duplicate, already uploaded for this patient "
            f"(scan {result.scan.pk}, {when:%d %b %Y %H:%M}); not stored again.",
        )
    else:
        messages.success(request, f"{accepted.name}: uploaded, queued for the model.")
    return result.scan.pk


def requested_ids(request):
    """The scan ids of `?ids=1,2,3`, or None when the list is malformed or too long."""
    raw = [part for part in request.GET.get("ids", "").split(",") if part.strip()]
    if len(raw) > MAX_STATUS_IDS or not all(part.strip().isdigit() for part in raw):
        return None
    return [int(part) for part in raw]


@require("view_scan_status")
@require_GET
def scan_status(request):
    ids = requested_ids(request)
    if ids is None:
        return HttpResponseBadRequest(f"ids must be a comma-separated list of at most {MAX_STATUS_IDS} scan numbers.")
    scans = Scan.objects.select_related("patient", "uploaded_by").order_by("-uploaded_at", "-pk")
    if ids:
        scans = scans.filter(pk__in=ids)
    return render(
        request,
        "radiology/scan_status.html",
        {
            "page": page_of(request, scans),
            "just_uploaded": bool(ids),
            "extra_query": urlencode({"ids": ",".join(map(str, ids))}) if ids else "",
        },
    )


@session_limits.passive  # the status page polls it: that is not the person's activity
@require("view_scan_status")
@require_GET
def scan_status_json(request):
    ids = requested_ids(request)
    if ids is None:
        return JsonResponse(
            {"error": f"ids must be a comma-separated list of at most {MAX_STATUS_IDS} scan numbers."}, status=400
        )
    scans = Scan.objects.filter(pk__in=ids).order_by("pk")
    return JsonResponse(
        {
            "scans": [
                {
                    "id": scan.pk,
                    "status": scan.status,
                    "status_label": scan.get_status_display(),
                    "failure_reason": scan.failure_reason,
                    "final": scan.is_settled,
                }
                for scan in scans
            ]
        }
    )

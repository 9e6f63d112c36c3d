"""The admin's pages: the accuracy dashboard and its charts, failed scans, model versions."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from classifier.intended_use import REASON_TEXT
from classifier.metrics import confusion_matrix_png, roc_curve_png
from classifier.models import ModelVersion
from radiology import comparison as comparison_of_models
from radiology import dashboard
from radiology.actions import pipeline, registry
from radiology.models import Scan
from radiology.monitoring import threshold_suggestion
from radiology.permissions import require
from radiology.private_files import private
from radiology.web.forms import DashboardFilterForm
from radiology.web.views import act_and_report, page_of

# The live metrics shown side by side with a model version's offline evaluation.
COMPARED_METRICS = [
    ("accuracy", "Accuracy"),
    ("sensitivity", "Sensitivity"),
    ("specificity", "Specificity"),
    ("precision", "Precision"),
    ("f1", "F1"),
    ("auc", "ROC AUC"),
]


def dashboard_filters(request):
    """(form, filters for dashboard_metrics); an invalid filter shows its error and filters nothing."""
    form = DashboardFilterForm(request.GET or None)
    if form.is_bound and form.is_valid():
        return form, {key: form.cleaned_data[key] for key in ("model_version", "start", "end")}
    return form, {}


def offline_evaluations(version):
    """{data set name: metrics} from the version's stored evaluation, kept to what is a mapping."""
    if version is None:
        return {}
    return {name: metrics for name, metrics in (version.evaluation or {}).items() if isinstance(metrics, dict)}


@require("view_dashboard")
@require_GET
def dashboard_page(request):
    form, filters = dashboard_filters(request)
    metrics = dashboard.dashboard_metrics(**filters)
    version = filters.get("model_version")
    if version is None and len(metrics["model_versions"]) == 1:
        version = ModelVersion.objects.filter(version=metrics["model_versions"][0]).first()
    evaluations = offline_evaluations(version)
    comparison = [
        {
            "label": label,
            "live": metrics[key],
            "interval": metrics["intervals"].get(key),
            "offline": [evaluation.get(key) for evaluation in evaluations.values()],
        }
        for key, label in COMPARED_METRICS
    ]
    (tn, fp), (fn, tp) = metrics["confusion_matrix"]
    return render(
        request,
        "radiology/dashboard.html",
        {
            "form": form,
            "metrics": metrics,
            "matrix": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
            "version": version,
            "evaluations": evaluations,
            "comparison": comparison,
            "query": request.GET.urlencode(),
            "flagged": metrics["outside_intended_use"],
            "suggestion": threshold_suggestion(ModelVersion.active()),
            "flagged_reasons": [
                {"code": code, "text": REASON_TEXT[code], "count": count}
                for code, count in metrics["outside_intended_use"]["by_reason"].items()
            ],
        },
    )


def png(data):
    return private(HttpResponse(data, content_type="image/png"))


@require("view_dashboard")
@require_GET
def dashboard_roc_png(request):
    _, filters = dashboard_filters(request)
    actual, probabilities, thresholds = dashboard.roc_points(**filters)
    return png(
        roc_curve_png(
            actual,
            probabilities,
            threshold=thresholds[0] if len(thresholds) == 1 else None,
            title="ROC curve: model vs doctors",
        )
    )


@require("view_dashboard")
@require_GET
def dashboard_confusion_png(request):
    _, filters = dashboard_filters(request)
    matrix = dashboard.dashboard_metrics(**filters)["confusion_matrix"]
    return png(confusion_matrix_png(matrix, title="Model (predicted) vs doctor (actual)"))


@require("requeue_scans")
@require_GET
def failed_scans(request):
    scans = Scan.objects.filter(status=Scan.Status.FAILED).select_related("patient").order_by("-uploaded_at", "-pk")
    return render(request, "radiology/failed_scans.html", {"page": page_of(request, scans)})


@require("requeue_scans")
@require_POST
def requeue(request, pk):
    scan = get_object_or_404(Scan, pk=pk)
    return act_and_report(
        request,
        lambda: pipeline.requeue_scan(request.user, scan),
        f"Scan {scan.pk} is back in the queue.",
        "failed_scans",
    )


@require("view_model_versions")
@require_GET
def model_versions(request):
    versions = ModelVersion.objects.select_related("parent").order_by("-created_at", "-pk")
    return render(request, "radiology/model_versions.html", {"page": page_of(request, versions)})


@require("activate_model_versions")
@require_POST
def record_threshold_from_reviews(request, pk):
    """The dashboard's suggested threshold recorded as a new, inactive calibrated version (audited)."""
    version = get_object_or_404(ModelVersion, pk=pk)
    try:
        calibrated = registry.record_threshold_from_reviews(request.user, version)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("dashboard")
    messages.success(
        request,
        f"Recorded {calibrated.version} (threshold {calibrated.threshold:.4f}, from the doctors' labels); "
        "activate it here when you are ready.",
    )
    return redirect("model_versions")


@require("activate_model_versions")
@require_POST
def activate_model_version(request, pk):
    version = get_object_or_404(ModelVersion, pk=pk)
    return act_and_report(
        request,
        lambda: registry.activate_model_version(request.user, version),
        f"Model {version.version} is now active: new scans are predicted with it.",
        "model_versions",
    )


@require("activate_model_versions")
@require_POST
def start_challenger(request, pk):
    version = get_object_or_404(ModelVersion, pk=pk)
    return act_and_report(
        request,
        lambda: registry.start_challenger(request.user, version),
        f"Model {version.version} is the challenger: it now also predicts every new scan.",
        "model_versions",
    )


@require("activate_model_versions")
@require_POST
def end_challenger(request, pk):
    version = get_object_or_404(ModelVersion, pk=pk)
    return act_and_report(
        request,
        lambda: registry.end_challenger(request.user, version),
        f"Model {version.version} is no longer the challenger; its comparison stays.",
        "model_versions",
    )


@require("view_model_versions")
@require_GET
def model_comparison(request, pk):
    version = get_object_or_404(ModelVersion, pk=pk)
    try:
        comparison = comparison_of_models.compare_with_champion(version)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("model_versions")
    return render(
        request,
        "radiology/model_comparison.html",
        {
            "version": version,
            "comparison": comparison,
            "sides": [("Active model (champion)", comparison["champion"]), ("Challenger", comparison["challenger"])],
            "disagreeing": comparison_of_models.disagreeing_cases(comparison),
        },
    )


@require("activate_model_versions")
@require_POST
def promote_challenger(request, pk):
    version = get_object_or_404(ModelVersion, pk=pk)
    try:
        registry.promote_challenger(request.user, version, confirmed=request.POST.get("confirm") == "yes")
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("model_comparison", pk=version.pk) if version.is_challenger else redirect("model_versions")
    messages.success(request, f"Model {version.version} is now active: new scans are predicted with it.")
    return redirect("model_versions")

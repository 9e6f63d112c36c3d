"""How accurate the model really is: its predictions against the doctors' final labels.

Only reviewed scans count. The truth of a scan is its latest review's final label (a correction
replaces the first decision); the model's answer is the label its prediction carried, at the
threshold of the model version that made it. Pages and the API both read `dashboard_metrics`.
"""

import datetime
from dataclasses import dataclass

import numpy as np
from django.db.models import Min, OuterRef, Subquery
from django.utils import timezone

from classifier.metrics import binary_metrics, roc_auc
from classifier.models import ModelVersion
from radiology.models import Label, Review, Scan


@dataclass(frozen=True)
class ReviewedOutcome:
    scan_id: int
    uploaded_on: datetime.date  # in the site's time zone
    model_version: str
    actual: int  # 1 = the doctor's final label is PNEUMONIA
    predicted: int  # 1 = the model said PNEUMONIA
    probability: float
    threshold: float
    upload_to_prediction_s: float
    prediction_to_review_s: float  # until the first review: a later correction is not the turnaround


def start_of_day(day):
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))


def uploaded_between(scans, start, end):
    """A date covers its whole day (in the site's time zone); a datetime is taken as it is."""
    if start is not None:
        is_day = not isinstance(start, datetime.datetime)
        scans = scans.filter(uploaded_at__gte=start_of_day(start) if is_day else start)
    if end is not None:
        if isinstance(end, datetime.datetime):
            scans = scans.filter(uploaded_at__lte=end)
        else:
            scans = scans.filter(uploaded_at__lt=start_of_day(end + datetime.timedelta(days=1)))
    return scans


def reviewed_outcomes(model_version=None, start=None, end=None) -> list[ReviewedOutcome]:
    """Reviewed scans uploaded from `start` to `end` (dates inclusive), by one model version or all.

    `model_version` is a ModelVersion or its version name.
    """
    latest_review = Review.objects.filter(scan=OuterRef("pk")).order_by("-created_at", "-pk")
    scans = (
        Scan.objects.filter(prediction__isnull=False, reviews__isnull=False)
        .annotate(
            final_label=Subquery(latest_review.values("final_label")[:1]), first_reviewed_at=Min("reviews__created_at")
        )
        .select_related("prediction", "prediction__model_version")
        .order_by("uploaded_at", "pk")
    )
    if model_version is not None:
        name = model_version.version if isinstance(model_version, ModelVersion) else str(model_version)
        scans = scans.filter(prediction__model_version__version=name)
    scans = uploaded_between(scans, start, end)
    return [
        ReviewedOutcome(
            scan_id=scan.pk,
            uploaded_on=timezone.localdate(scan.uploaded_at),
            model_version=scan.prediction.model_version.version,
            actual=int(scan.final_label == Label.PNEUMONIA),
            predicted=int(scan.prediction.label == Label.PNEUMONIA),
            probability=scan.prediction.probability,
            threshold=scan.prediction.threshold,
            upload_to_prediction_s=(scan.prediction.created_at - scan.uploaded_at).total_seconds(),
            prediction_to_review_s=(scan.first_reviewed_at - scan.prediction.created_at).total_seconds(),
        )
        for scan in scans
    ]


def duration_stats(seconds):
    if not seconds:
        return {"n": 0, "median_s": None, "p95_s": None, "mean_s": None}
    values = np.asarray(seconds, dtype=float)
    return {
        "n": int(values.size),
        "median_s": float(np.median(values)),
        "p95_s": float(np.percentile(values, 95)),
        "mean_s": float(values.mean()),
    }


def metrics_for(outcomes):
    """The binary metric keys of classifier.metrics, for the labels the predictions really carried.

    Scans judged at different thresholds (several model versions) cannot share one threshold, so
    the confusion matrix is built from each prediction's own label (scored 0 or 1 at threshold
    0.5) and the AUC from the probabilities.
    """
    actual = [o.actual for o in outcomes]
    metrics = binary_metrics(actual, [o.predicted for o in outcomes], 0.5)
    metrics["auc"] = roc_auc(actual, [o.probability for o in outcomes])
    thresholds = sorted({o.threshold for o in outcomes})
    metrics["threshold"] = thresholds[0] if len(thresholds) == 1 else None
    metrics["thresholds"] = thresholds
    return metrics


def weekly_trend(outcomes):
    """Accuracy over time: the headline metrics for each week (Monday first) that has reviewed scans."""
    weeks = {}
    for outcome in outcomes:
        monday = outcome.uploaded_on - datetime.timedelta(days=outcome.uploaded_on.weekday())
        weeks.setdefault(monday, []).append(outcome)
    trend = []
    for monday, week in sorted(weeks.items()):
        metrics = metrics_for(week)
        trend.append(
            {
                "week_start": monday.isoformat(),
                **{key: metrics[key] for key in ("n", "accuracy", "sensitivity", "specificity", "auc")},
                "override_rate": sum(o.actual != o.predicted for o in week) / len(week),
            }
        )
    return trend


def dashboard_metrics(model_version=None, start=None, end=None) -> dict:
    """JSON-ready: n, auc, accuracy, sensitivity, specificity, precision, f1, threshold(s),
    confusion_matrix [[tn, fp], [fn, tp]], override_rate, turnaround (seconds) and by_week.
    A metric undefined for the data (no scans, one class only) is None."""
    outcomes = reviewed_outcomes(model_version, start, end)
    metrics = metrics_for(outcomes)
    overridden = sum(o.actual != o.predicted for o in outcomes)
    metrics["override_rate"] = overridden / len(outcomes) if outcomes else None
    metrics["turnaround"] = {
        "upload_to_prediction": duration_stats([o.upload_to_prediction_s for o in outcomes]),
        "prediction_to_review": duration_stats([o.prediction_to_review_s for o in outcomes]),
    }
    metrics["model_versions"] = sorted({o.model_version for o in outcomes})
    metrics["by_week"] = weekly_trend(outcomes)
    return metrics

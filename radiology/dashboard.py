"""How accurate the model really is: its predictions against the doctors' final labels.

Only reviewed scans count. The truth of a scan is its latest review's final label (a correction
replaces the first decision); the model's answer is the label its prediction carried, at the
threshold of the model version that made it. Pages and the API both read `dashboard_metrics`.

Every figure is computed in the database from ReviewOutcome (one row per reviewed scan, kept up to
date by the review action; radiology/outcomes.py): counts by conditional aggregation, the AUC as
the Mann-Whitney statistic over the rows grouped by score, percentiles from two sorted rows. The
cost is a few scans of one narrow, indexed table, whatever the number of scans waiting or reviews.
"""

import datetime
import math

from django.db import connection
from django.db.models import Avg, Count, IntegerField, Q, Value
from django.db.models.functions import TruncWeek
from django.utils import timezone

from classifier.metrics import metrics_from_counts
from classifier.models import ModelVersion
from radiology.models import ReviewOutcome

ACTUAL = Q(actual_positive=True)
PREDICTED = Q(predicted_positive=True)
CONFUSION_COUNTS = {
    "tn": Count("pk", filter=~ACTUAL & ~PREDICTED),
    "fp": Count("pk", filter=~ACTUAL & PREDICTED),
    "fn": Count("pk", filter=ACTUAL & ~PREDICTED),
    "tp": Count("pk", filter=ACTUAL & PREDICTED),
}
TURNAROUND_FIELDS = {
    "upload_to_prediction": "upload_to_prediction_s",
    "prediction_to_review": "prediction_to_review_s",
}


def start_of_day(day):
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))


def uploaded_between(rows, start, end):
    """A date covers its whole day (in the site's time zone); a datetime is taken as it is."""
    if start is not None:
        is_day = not isinstance(start, datetime.datetime)
        rows = rows.filter(uploaded_at__gte=start_of_day(start) if is_day else start)
    if end is not None:
        if isinstance(end, datetime.datetime):
            rows = rows.filter(uploaded_at__lte=end)
        else:
            rows = rows.filter(uploaded_at__lt=start_of_day(end + datetime.timedelta(days=1)))
    return rows


def outcome_rows(model_version=None, start=None, end=None):
    """ReviewOutcome rows of scans uploaded from `start` to `end` (dates inclusive), by one model
    version (a ModelVersion or its name) or all. Callers may narrow the queryset further."""
    rows = ReviewOutcome.objects.all()
    if model_version is not None:
        name = model_version.version if isinstance(model_version, ModelVersion) else str(model_version)
        rows = rows.filter(model_version__version=name)
    return uploaded_between(rows, start, end)


def auc_by_group(rows, group=None):
    """[ROC AUC or None for each group], groups in ascending order of the `group` expression (one
    group without it).

    Mann-Whitney U per group: for each distinct score, its positives beat the negatives scored
    lower and tie half of those scored the same; U / (positives x negatives). Exact with ties, and
    equal to classifier.metrics.roc_auc on the same rows.
    """
    scores = (
        rows.annotate(auc_group=group if group is not None else Value(0, output_field=IntegerField()))
        .order_by()
        .values("auc_group", "probability")
        .annotate(pos=Count("pk", filter=ACTUAL), neg=Count("pk", filter=~ACTUAL))
    )
    inner, params = scores.query.sql_with_params()  # Django's compiled SQL; the values stay in params
    statement = f"""
        SELECT SUM(pos * (neg_below + neg / 2.0)), SUM(pos), SUM(neg)
        FROM (
            SELECT auc_group, pos, neg,
                   SUM(neg) OVER (PARTITION BY auc_group ORDER BY probability ROWS UNBOUNDED PRECEDING) - neg
                       AS neg_below
            FROM ({inner}) AS scores
        ) AS ranked
        GROUP BY auc_group
        ORDER BY auc_group
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return [
            float(u) / (int(positives) * int(negatives)) if positives and negatives else None
            for u, positives, negatives in cursor.fetchall()
        ]


def percentile(rows, field, count, q):
    """The q-th percentile of `field` over `count` rows, interpolated linearly as numpy does,
    from the (at most) two rows around its position in sorted order."""
    position = q / 100 * (count - 1)
    below = math.floor(position)
    values = list(rows.order_by(field).values_list(field, flat=True)[below : below + 2])
    if len(values) == 1 or position == below:
        return float(values[0])
    return float(values[0] + (values[1] - values[0]) * (position - below))


def duration_stats(rows, field, count, mean):
    if not count:
        return {"n": 0, "median_s": None, "p95_s": None, "mean_s": None}
    return {
        "n": count,
        "median_s": percentile(rows, field, count, 50),
        "p95_s": percentile(rows, field, count, 95),
        "mean_s": float(mean),
    }


def headline(counts):
    """Metrics of one set of rows from its four counts (the AUC comes separately)."""
    metrics = metrics_from_counts(counts["tn"], counts["fp"], counts["fn"], counts["tp"])
    (tn, fp), (fn, tp) = metrics["confusion_matrix"]
    metrics["override_rate"] = (fp + fn) / metrics["n"] if metrics["n"] else None  # doctor != model
    return metrics


def weekly_trend(rows):
    """Accuracy over time: the headline metrics for each week (Monday first) that has reviewed scans."""
    week = TruncWeek("uploaded_at")  # in the site's time zone
    weeks = rows.annotate(week=week).order_by("week").values("week").annotate(**CONFUSION_COUNTS)
    trend = []
    for counts, auc in zip(weeks, auc_by_group(rows, week), strict=True):
        metrics = headline(counts)
        trend.append(
            {
                "week_start": timezone.localtime(counts["week"]).date().isoformat(),
                **{key: metrics[key] for key in ("n", "accuracy", "sensitivity", "specificity")},
                "auc": auc,
                "override_rate": metrics["override_rate"],
            }
        )
    return trend


def metrics_of(rows) -> dict:
    """JSON-ready: n, auc, accuracy, sensitivity, specificity, precision, f1, threshold(s),
    confusion_matrix [[tn, fp], [fn, tp]], override_rate, turnaround (seconds), model_versions and
    by_week, over the given ReviewOutcome rows. A metric undefined for the data is None.

    The confusion matrix is built from each prediction's own label: scans judged at different
    thresholds (several model versions) cannot share one threshold."""
    totals = rows.aggregate(
        **CONFUSION_COUNTS, **{f"{name}_mean": Avg(field) for name, field in TURNAROUND_FIELDS.items()}
    )
    metrics = headline(totals)
    count = metrics["n"]
    metrics["auc"] = auc_by_group(rows)[0] if count else None
    thresholds = sorted(rows.order_by().values_list("threshold", flat=True).distinct())
    metrics["threshold"] = thresholds[0] if len(thresholds) == 1 else None
    metrics["thresholds"] = thresholds
    metrics["turnaround"] = {
        name: duration_stats(rows, field, count, totals[f"{name}_mean"]) for name, field in TURNAROUND_FIELDS.items()
    }
    metrics["model_versions"] = sorted(
        rows.order_by().values_list("model_version__version", flat=True).distinct() if count else []
    )
    metrics["by_week"] = weekly_trend(rows) if count else []
    return metrics


def dashboard_metrics(model_version=None, start=None, end=None) -> dict:
    """metrics_of the reviewed scans uploaded from `start` to `end` (dates inclusive), by one model
    version or all."""
    return metrics_of(outcome_rows(model_version, start, end))


def roc_points(model_version=None, start=None, end=None):
    """(actual labels 0/1, probabilities, thresholds in use) for drawing the ROC curve."""
    rows = outcome_rows(model_version, start, end)
    pairs = list(rows.values_list("actual_positive", "probability"))
    thresholds = sorted(rows.order_by().values_list("threshold", flat=True).distinct())
    return [int(actual) for actual, _ in pairs], [probability for _, probability in pairs], thresholds

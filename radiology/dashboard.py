"""How accurate the model really is: its predictions against the doctors' final labels.

Only reviewed scans within the model's intended use count (the others are reported apart). The truth of a scan is its latest review's final label (a correction
replaces the first decision); the model's answer is the label its prediction carried, at the
threshold of the model version that made it. Pages and the API both read `dashboard_metrics`.

Every figure is computed in the database from ReviewOutcome (one row per reviewed scan, kept up to
date by the review action; radiology/outcomes.py), in three passes over that one narrow, indexed
table: counts grouped by week and cell, the AUC as the Mann-Whitney statistic over the rows grouped
by score (window sums), and the percentiles from the rows around their positions in sorted order.
"""

import datetime
import hashlib
import math

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Max, Q, Sum
from django.db.models.functions import TruncWeek
from django.utils import timezone

from classifier.metrics import metrics_from_counts
from classifier.models import ModelVersion
from radiology.models import Prediction, Review, ReviewOutcome

CACHE_SECONDS = 600
ACTUAL = Q(actual_positive=True)
CELLS = {(False, False): "tn", (False, True): "fp", (True, False): "fn", (True, True): "tp"}  # (actual, predicted)
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


def fetch(statement, rows, more_params=()):
    """Run `statement`, whose {rows} is replaced by the SQL Django compiles for the queryset `rows`
    (its parameters first, then `more_params`)."""
    inner, params = rows.query.sql_with_params()  # the values stay in params
    with connection.cursor() as cursor:
        cursor.execute(statement.format(rows=inner), [*params, *more_params])
        return cursor.fetchall()


def weekly_auc(rows):
    """[(week U, all-weeks U, positives, negatives)] for each week in order, in one pass.

    The Mann-Whitney U of a set of scans: each positive beats the negatives scored lower and ties
    half of those scored the same; the AUC is U / (positives x negatives). Exact with ties, equal
    to classifier.metrics.roc_auc. The all-weeks U is split over the weeks, so their sum is the U
    of all the rows.
    """
    scores = (
        rows.annotate(week=TruncWeek("uploaded_at"))
        .order_by()
        .values("week", "probability")
        .annotate(pos=Count("pk", filter=ACTUAL), neg=Count("pk", filter=~ACTUAL))
    )
    statement = """
        SELECT SUM(pos * (week_neg_upto - neg / 2.0)), SUM(pos * (all_neg_upto - all_neg_same / 2.0)),
               SUM(pos), SUM(neg)
        FROM (
            SELECT week, pos, neg,
                   SUM(neg) OVER (PARTITION BY week ORDER BY probability ROWS UNBOUNDED PRECEDING) AS week_neg_upto,
                   SUM(neg) OVER (ORDER BY probability RANGE UNBOUNDED PRECEDING) AS all_neg_upto,
                   SUM(neg) OVER (PARTITION BY probability) AS all_neg_same
            FROM ({rows}) AS scores
        ) AS ranked
        GROUP BY week
        ORDER BY week
    """
    return [tuple(float(value) for value in row) for row in fetch(statement, scores)]


def auc(u, positives, negatives):
    return u / (positives * negatives) if positives and negatives else None


def turnaround(rows, count, sums):
    """Median, 95th percentile (interpolated as numpy does) and mean of each turnaround, reading
    only the rows around each percentile's position from one sorted pass per duration."""
    if not count:
        return {name: {"n": 0, "median_s": None, "p95_s": None, "mean_s": None} for name in TURNAROUND_FIELDS}
    positions = {q: q / 100 * (count - 1) for q in (50, 95)}
    wanted = sorted(
        {math.floor(p) + step for p in positions.values() for step in (1, 2) if math.floor(p) + step <= count}
    )
    first, second = TURNAROUND_FIELDS.values()
    marks = ", ".join(["%s"] * len(wanted))
    statement = f"""
        SELECT first_rank, first_value, second_rank, second_value
        FROM (
            SELECT {first} AS first_value, ROW_NUMBER() OVER (ORDER BY {first}) AS first_rank,
                   {second} AS second_value, ROW_NUMBER() OVER (ORDER BY {second}) AS second_rank
            FROM ({{rows}}) AS durations
        ) AS ranked
        WHERE first_rank IN ({marks}) OR second_rank IN ({marks})
    """  # noqa: S608  (column names from TURNAROUND_FIELDS, not from input)
    found = fetch(statement, rows.order_by().values(first, second), [*wanted, *wanted])
    by_rank = {name: {} for name in TURNAROUND_FIELDS}
    names = list(TURNAROUND_FIELDS)
    for first_rank, first_value, second_rank, second_value in found:
        by_rank[names[0]][first_rank] = first_value
        by_rank[names[1]][second_rank] = second_value

    def percentile(values, q):
        below = math.floor(positions[q])
        low = values[below + 1]
        high = values.get(below + 2, low)
        return float(low + (high - low) * (positions[q] - below))

    return {
        name: {
            "n": count,
            "median_s": percentile(by_rank[name], 50),
            "p95_s": percentile(by_rank[name], 95),
            "mean_s": sums[name] / count,
        }
        for name in TURNAROUND_FIELDS
    }


def headline(counts):
    """Metrics of one set of rows from its four counts (the AUC comes separately)."""
    metrics = metrics_from_counts(counts["tn"], counts["fp"], counts["fn"], counts["tp"])
    (tn, fp), (fn, tp) = metrics["confusion_matrix"]
    metrics["override_rate"] = (fp + fn) / metrics["n"] if metrics["n"] else None  # doctor != model
    return metrics


def metrics_of(rows) -> dict:
    """JSON-ready: n, auc, accuracy, sensitivity, specificity, precision, f1, threshold(s),
    confusion_matrix [[tn, fp], [fn, tp]], override_rate, turnaround (seconds), model_versions and
    by_week (Monday first, in the site's time zone), over the given ReviewOutcome rows. A metric
    undefined for the data is None.

    Three passes over the rows: counts by week, version, threshold and cell (everything but the
    AUC and the percentiles follows from them), the AUC, the percentiles. The confusion matrix is
    built from each prediction's own label: scans judged at different thresholds (several model
    versions) cannot share one threshold."""
    groups = (
        rows.annotate(week=TruncWeek("uploaded_at"))
        .order_by("week")
        .values("week", "model_version_id", "threshold", "actual_positive", "predicted_positive")
        .annotate(count=Count("pk"), **{f"{name}_sum": Sum(field) for name, field in TURNAROUND_FIELDS.items()})
    )
    totals = dict.fromkeys(CELLS.values(), 0)
    sums = dict.fromkeys(TURNAROUND_FIELDS, 0.0)
    weeks, version_ids, thresholds = {}, set(), set()
    for group in groups:
        cell = CELLS[group["actual_positive"], group["predicted_positive"]]
        totals[cell] += group["count"]
        weeks.setdefault(group["week"], dict.fromkeys(CELLS.values(), 0))[cell] += group["count"]
        for name in TURNAROUND_FIELDS:
            sums[name] += group[f"{name}_sum"]
        version_ids.add(group["model_version_id"])
        thresholds.add(group["threshold"])
    metrics = headline(totals)
    count = metrics["n"]
    u_by_week = weekly_auc(rows) if count else []
    metrics["auc"] = auc(sum(u for _, u, _, _ in u_by_week), totals["tp"] + totals["fn"], totals["tn"] + totals["fp"])
    metrics["threshold"] = next(iter(thresholds)) if len(thresholds) == 1 else None
    metrics["thresholds"] = sorted(thresholds)
    metrics["turnaround"] = turnaround(rows, count, sums)
    metrics["model_versions"] = sorted(
        ModelVersion.objects.filter(pk__in=version_ids).values_list("version", flat=True)
    )
    metrics["by_week"] = []
    for (week, counts), (week_u, _, positives, negatives) in zip(weeks.items(), u_by_week, strict=True):
        week_metrics = headline(counts)
        metrics["by_week"].append(
            {
                "week_start": timezone.localtime(week).date().isoformat(),
                **{key: week_metrics[key] for key in ("n", "accuracy", "sensitivity", "specificity")},
                "auc": auc(week_u, positives, negatives),
                "override_rate": week_metrics["override_rate"],
            }
        )
    return metrics


def dashboard_metrics(model_version=None, start=None, end=None) -> dict:
    """metrics_of the reviewed scans within the model's intended use uploaded from `start` to `end`
    (dates inclusive), by one model version or all, with 95 % intervals and the "too few reviews"
    state; the scans outside intended use reported apart (radiology.monitoring).

    The review figures are cached under the latest review's id: every review or correction writes a
    Review row in the transaction that updates ReviewOutcome, so a new review means a new key and a
    full recomputation; a cached figure is one computed from the same reviews. The TTL bounds what
    rebuild_review_outcomes (a repair, no new review) could leave behind. The flagged counts follow
    the predictions, not the reviews: they are cached under the latest prediction's id the same way,
    with the drift of one chosen version's predictions against its validation reference.
    """
    from radiology.monitoring import drift, outside_intended_use, reliability_of, with_intervals

    name = model_version.version if isinstance(model_version, ModelVersion) else model_version
    latest_review = Review.objects.aggregate(latest=Max("pk"))["latest"]
    key = (
        "dashboard:" + hashlib.sha256(repr((name, start, end, settings.TIME_ZONE, latest_review)).encode()).hexdigest()
    )
    cached = cache.get(key)
    if cached is None:
        within = outcome_rows(model_version, start, end).filter(within_intended_use=True)
        cached = {**metrics_of(within), "reliability": reliability_of(within)}
        cache.set(key, cached, CACHE_SECONDS)
    latest_prediction = Prediction.objects.aggregate(latest=Max("pk"))["latest"]
    flagged_key = f"{key}:flagged:{latest_prediction}"
    flagged = cache.get(flagged_key)
    if flagged is None:
        version = ModelVersion.objects.filter(version=name).first() if name else None
        flagged = {
            "outside_intended_use": outside_intended_use(model_version, start, end),
            "drift": drift(version, start, end) if version else None,
        }
        cache.set(flagged_key, flagged, CACHE_SECONDS)
    metrics = with_intervals(dict(cached))
    metrics.update(flagged)
    return metrics


def roc_points(model_version=None, start=None, end=None):
    """(actual labels 0/1, probabilities, thresholds in use) for drawing the ROC curve (within-use scans)."""
    rows = outcome_rows(model_version, start, end).filter(within_intended_use=True)
    pairs = list(rows.values_list("actual_positive", "probability"))
    thresholds = sorted(rows.order_by().values_list("threshold", flat=True).distinct())
    return [int(actual) for actual, _ in pairs], [probability for _, probability in pairs], thresholds

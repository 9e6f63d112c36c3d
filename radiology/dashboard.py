"""How accurate the model really is: its predictions against the doctors' final labels.

Only reviewed scans within the model's intended use count (the others are reported apart). The truth of a scan is its latest review's final label (a correction
replaces the first decision); the model's answer is the label its prediction carried, at the
threshold of the model version that made it. Pages and the API both read `dashboard_metrics`.

Every figure is computed from the weekly summary that the review action keeps (radiology/outcomes.py:
per model version and week, the counts by threshold and cell with their turnarounds summed, the
probability histogram by final label, the turnaround histograms), so that the work is bounded by
weeks x bins, not by the number of scans. A date range takes its whole weeks from the summary and
the days of a week it cuts from their ReviewOutcome rows (at most two weeks' worth), through the same
`tallies`. Counts, rates and turnaround means are exact; the AUC is the Mann-Whitney statistic of the
probabilities in bins of width 0.001 (ties within a bin count one half), the reliability view takes
each bin at its middle, and the turnaround percentiles are those of turnarounds rounded to two
significant digits (within 5 %).
"""

import datetime
import hashlib
import math

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Max, Sum
from django.utils import timezone

from classifier.metrics import metrics_from_counts
from classifier.models import ModelVersion
from radiology.models import Prediction, Review, ReviewOutcome, ReviewWeek, ReviewWeekScore, ReviewWeekTurnaround
from radiology.outcomes import MEASURES, tallies

CACHE_SECONDS = 600
CELLS = {(False, False): "tn", (False, True): "fp", (True, False): "fn", (True, True): "tp"}  # (actual, predicted)


def start_of_day(day):
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))


def version_name(model_version):
    return model_version.version if isinstance(model_version, ModelVersion) else str(model_version)


def outcome_rows(model_version=None, start=None, end=None):
    """ReviewOutcome rows of scans uploaded from `start` to `end` (dates inclusive, whole days in the
    site's time zone), by one model version (a ModelVersion or its name) or all. Callers may narrow
    the queryset further."""
    rows = ReviewOutcome.objects.all()
    if model_version is not None:
        rows = rows.filter(model_version__version=version_name(model_version))
    if start is not None:
        rows = rows.filter(uploaded_at__gte=start_of_day(start))
    if end is not None:
        rows = rows.filter(uploaded_at__lt=start_of_day(end + datetime.timedelta(days=1)))
    return rows


def whole_weeks(start, end):
    """(first Monday, Monday after the last) of the weeks that lie wholly from `start` to `end`
    (dates inclusive, None: unbounded); None when no whole week does."""
    first = None if start is None else start + datetime.timedelta(days=-start.weekday() % 7)
    after = None if end is None else end + datetime.timedelta(days=1)
    after = None if after is None else after - datetime.timedelta(days=after.weekday())
    if first is not None and after is not None and first >= after:
        return None
    return first, after


def summarized_weeks(model_version, start, end, uploaded):
    """(filter of a weekly summary's rows for the whole weeks from `start` to `end` by one version or
    all, None when no whole week lies in the range; filter of the upload times, under the lookup
    `uploaded`, that those weeks cover: the rows in range but not covered are read one by one)."""
    weeks = whole_weeks(start, end)
    if weeks is None:
        return None, {}
    first, after = weeks
    summary, covered = {}, {}
    if model_version is not None:
        summary["model_version__version"] = version_name(model_version)
    if first is not None:
        summary["week__gte"], covered[f"{uploaded}__gte"] = first, start_of_day(first)
    if after is not None:
        summary["week__lt"], covered[f"{uploaded}__lt"] = after, start_of_day(after)
    return summary, covered


class Tallies:
    """The weekly summary's tallies of a set of within-use reviewed scans, summed by what the dashboard
    tells apart: `cells` {(week, version id, threshold, actual, predicted): [n, upload to prediction
    µs, prediction to review µs]}, `scores` {score bin: [positives, negatives]} over all the weeks,
    `weekly_u` {week: [Mann-Whitney U, positives, negatives]} and `turnarounds` {(measure, binned
    seconds): [n]}."""

    def __init__(self):
        self.cells, self.scores, self.weekly_u, self.turnarounds = {}, {}, {}, {}
        self.scores_by_week = {}  # of the rows read one by one, until add_weeks_u

    def add(self, table, key, increments):
        """Adds one of radiology.outcomes.tallies (of a week whose figures come from its rows)."""
        if table == "cell":
            into = self.cells
            key = tuple(key[name] for name in CELL_KEY)
        elif table == "score":
            add_to(self.scores_by_week.setdefault(key["week"], {}), key["score_bin"], increments.values())
            into, key = self.scores, key["score_bin"]
        else:
            into, key = self.turnarounds, (key["measure"], key["seconds"])
        add_to(into, key, increments.values())

    def add_weeks_u(self):
        """The U of each week whose scores were added one by one."""
        for week, bins in self.scores_by_week.items():
            self.weekly_u[week] = u_and_counts(bins)
        self.scores_by_week = {}


CELL_KEY = ("week", "model_version_id", "threshold", "actual_positive", "predicted_positive")


def add_to(totals, key, values):
    summed = totals.setdefault(key, [0] * len(values))
    for i, value in enumerate(values):
        summed[i] += value


def mann_whitney_u(bins):
    """U of [(positives, negatives)] in increasing score order: each positive beats the negatives of
    lower bins and ties half of those in its own bin. WEEKLY_U is the same sum in SQL."""
    u, below = 0.0, 0
    for positives, negatives in bins:
        u += positives * (below + negatives / 2.0)
        below += negatives
    return u


def u_and_counts(bins):
    """[U, positives, negatives] of {score bin: [positives, negatives]}."""
    return [
        mann_whitney_u(bins[score] for score in sorted(bins)),
        sum(positives for positives, _ in bins.values()),
        sum(negatives for _, negatives in bins.values()),
    ]


# Per week of the summary, U (as mann_whitney_u), positives and negatives; {bins} is the summary's
# rows grouped by week and score bin.
WEEKLY_U = """
    SELECT week, SUM(positives * (negatives_below + negatives / 2.0)), SUM(positives), SUM(negatives)
    FROM (
        SELECT week, positives, negatives,
               SUM(negatives) OVER (PARTITION BY week ORDER BY score_bin ROWS UNBOUNDED PRECEDING)
                   - negatives AS negatives_below
        FROM ({bins}) AS bins
    ) AS ranked
    GROUP BY week
"""


def review_tallies(model_version=None, start=None, end=None):
    """Tallies of the within-use reviewed scans uploaded from `start` to `end` (dates inclusive), by one
    model version (a ModelVersion or its name) or all: the whole weeks from the summary tables (the
    weekly U computed in the database, so only a row per week, per score bin and per turnaround
    value comes back), the other days from their ReviewOutcome rows."""
    found = Tallies()
    rows = outcome_rows(model_version, start, end).filter(within_intended_use=True)
    summary, covered = summarized_weeks(model_version, start, end, "uploaded_at")
    if summary is not None:
        rows = rows.exclude(**covered) if covered else rows.none()
        for week, version, threshold, actual, predicted, *values in ReviewWeek.objects.filter(**summary).values_list(
            *CELL_KEY, "n", *(f"{measure}_us" for measure in MEASURES)
        ):
            found.cells[week, version, threshold, actual, predicted] = values
        scores = ReviewWeekScore.objects.filter(**summary).order_by()
        for score, positives, negatives in (
            scores.values("score_bin")
            .annotate(p=Sum("positives"), n=Sum("negatives"))
            .values_list("score_bin", "p", "n")
        ):
            found.scores[score] = [positives, negatives]
        by_week_and_bin = scores.values("week", "score_bin").annotate(
            positives=Sum("positives"), negatives=Sum("negatives")
        )
        bins, params = by_week_and_bin.values_list(
            "week", "score_bin", "positives", "negatives"
        ).query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(WEEKLY_U.format(bins=bins), params)
            for week, u, positives, negatives in cursor.fetchall():
                found.weekly_u[week] = [float(u), int(positives), int(negatives)]
        for measure, seconds, n in (
            ReviewWeekTurnaround.objects.filter(**summary)
            .order_by()
            .values("measure", "seconds")
            .annotate(total=Sum("n"))
            .values_list("measure", "seconds", "total")
        ):
            found.turnarounds[measure, seconds] = [n]
    for outcome in rows:
        for table, key, increments in tallies(outcome):
            found.add(table, key, increments)
    found.add_weeks_u()
    return found


def auc(u, positives, negatives):
    return u / (positives * negatives) if positives and negatives else None


def auc_of(bins):
    """The AUC of {score bin: [positives, negatives]} (None without both classes); equal to
    classifier.metrics.roc_auc of the binned scores."""
    return auc(*u_and_counts(bins))


def percentile(histogram, count, q):
    """The q-th percentile (interpolated as numpy does) of the values of sorted [(value, n)], count in all."""
    position = q / 100 * (count - 1)
    below = math.floor(position)
    low = high = None
    seen = 0
    for value, n in histogram:
        seen += n
        if low is None and seen > below:
            low = value
        if seen > below + 1 or seen == count:
            high = value
            break
    return float(low + (high - low) * (position - below))


def turnaround(found, count, sums):
    """Median, 95th percentile (of the binned turnarounds) and mean (exact) of each turnaround."""
    figures = {}
    for measure in MEASURES:
        if not count:
            figures[measure] = {"n": 0, "median_s": None, "p95_s": None, "mean_s": None}
            continue
        histogram = sorted((seconds, n) for (name, seconds), (n,) in found.turnarounds.items() if name == measure and n)
        figures[measure] = {
            "n": count,
            "median_s": percentile(histogram, count, 50),
            "p95_s": percentile(histogram, count, 95),
            "mean_s": sums[measure] / count / 1_000_000,
        }
    return figures


def headline(counts):
    """Metrics of one set of scans from its four counts (the AUC comes separately)."""
    metrics = metrics_from_counts(counts["tn"], counts["fp"], counts["fn"], counts["tp"])
    (tn, fp), (fn, tp) = metrics["confusion_matrix"]
    metrics["override_rate"] = (fp + fn) / metrics["n"] if metrics["n"] else None  # doctor != model
    return metrics


def metrics_of(found) -> dict:
    """JSON-ready: n, auc, accuracy, sensitivity, specificity, precision, f1, threshold(s),
    confusion_matrix [[tn, fp], [fn, tp]], override_rate, turnaround (seconds), model_versions and
    by_week (Monday first, in the site's time zone), from the Tallies of a set of scans. A metric
    undefined for the data is None.

    The confusion matrix is built from each prediction's own label: scans judged at different
    thresholds (several model versions) cannot share one threshold."""
    totals = dict.fromkeys(CELLS.values(), 0)
    sums = dict.fromkeys(MEASURES, 0)
    weeks, version_ids, thresholds = {}, set(), set()
    for (week, version, threshold, actual, predicted), (n, *durations) in sorted(found.cells.items()):
        if not n:
            continue
        cell = CELLS[actual, predicted]
        totals[cell] += n
        weeks.setdefault(week, dict.fromkeys(CELLS.values(), 0))[cell] += n
        for measure, duration in zip(MEASURES, durations, strict=True):
            sums[measure] += duration
        version_ids.add(version)
        thresholds.add(threshold)
    metrics = headline(totals)
    metrics["auc"] = auc_of(found.scores)
    metrics["threshold"] = next(iter(thresholds)) if len(thresholds) == 1 else None
    metrics["thresholds"] = sorted(thresholds)
    metrics["turnaround"] = turnaround(found, metrics["n"], sums)
    metrics["model_versions"] = sorted(
        ModelVersion.objects.filter(pk__in=version_ids).values_list("version", flat=True)
    )
    metrics["by_week"] = []
    for week, counts in sorted(weeks.items()):
        week_metrics = headline(counts)
        metrics["by_week"].append(
            {
                "week_start": week.isoformat(),
                **{key: week_metrics[key] for key in ("n", "accuracy", "sensitivity", "specificity")},
                "auc": auc(*found.weekly_u.get(week, (0.0, 0, 0))),
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
    a rebuild of the summaries (a repair, no new review) could leave behind. The flagged counts follow
    the predictions, not the reviews: they are cached under the latest prediction's id alone, the same way,
    with the drift of one chosen version's predictions against its validation reference.
    """
    from radiology.monitoring import drift, outside_intended_use, reliability_of, with_intervals

    name = None if model_version is None else version_name(model_version)
    filters = (name, start, end, settings.TIME_ZONE)
    latest_review = Review.objects.aggregate(latest=Max("pk"))["latest"]
    key = "dashboard:" + hashlib.sha256(repr((*filters, latest_review)).encode()).hexdigest()
    cached = cache.get(key)
    if cached is None:
        found = review_tallies(model_version, start, end)
        cached = {**metrics_of(found), "reliability": reliability_of(found.scores)}
        cache.set(key, cached, CACHE_SECONDS)
    latest_prediction = Prediction.objects.aggregate(latest=Max("pk"))["latest"]
    flagged_key = "dashboard-flagged:" + hashlib.sha256(repr((*filters, latest_prediction)).encode()).hexdigest()
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

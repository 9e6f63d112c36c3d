"""How sure the live figures are, and the scans outside the model's intended use, counted apart.

- `with_intervals`: 95 % intervals for the dashboard's headline figures (Wilson for the rates,
  Hanley-McNeil for the AUC, which needs only the AUC and the class counts the SQL pass gives)
  and a "too few reviews" state below MIN_REVIEWS.
- `outside_intended_use`: of the scans predicted in the period, how many were outside the model's
  intended use (classifier.intended_use): count, share with its interval, by reason, by week, from
  the weekly PredictionWeek counts (and the rows of the weeks a date range cuts).
- `reliability_of`: predicted probability bins against the doctors' final labels (from the
  dashboard's score histogram).
- `drift`: per week, the population stability index of the probabilities and image scores against
  the validation reference, with its band (stable, watch from 0.1, drift from 0.25).
- `threshold_suggestion`: the threshold the site's rule would choose from the doctors' labels, once
  the active version has enough within-use reviews (recorded by actions.registry).
"""

import datetime
import hashlib
import math

from django.core.cache import cache
from django.db.models import Case, Count, F, FloatField, IntegerField, Max, Sum, Value, When
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, TruncWeek
from django.utils import timezone

from classifier.intended_use import REASON_TEXT
from classifier.metrics import binary_metrics
from classifier.models import ModelVersion
from classifier.statistics import wilson_interval
from classifier.threshold import DEFAULT_RULE, choose_threshold
from radiology.dashboard import CACHE_SECONDS, start_of_day, summarized_weeks
from radiology.models import Prediction, PredictionWeek, Review, ReviewOutcome
from radiology.outcomes import SCORE_BINS, prediction_tallies

MIN_REVIEWS = 30  # below this, the page and the API say the figures are too few to judge by
Z_95 = 1.959963984540054


def interval(bounds):
    return None if bounds is None else [bounds[0], bounds[1]]


def hanley_mcneil_interval(auc, positives, negatives, z=Z_95):
    """The AUC's 95 % interval from its standard error (Hanley & McNeil 1982), clipped to [0, 1]."""
    if auc is None or not positives or not negatives:
        return None
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    variance = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)) / (
        positives * negatives
    )
    half = z * math.sqrt(max(variance, 0.0))
    return [max(0.0, auc - half), min(1.0, auc + half)]


def with_intervals(metrics):
    """Adds `intervals` (95 %, per figure; None where undefined) and `too_few_reviews` to the
    dashboard's metrics, from their confusion matrix and AUC."""
    (tn, fp), (fn, tp) = metrics["confusion_matrix"]
    n = tn + fp + fn + tp
    metrics["intervals"] = {
        "accuracy": interval(wilson_interval(tp + tn, n)),
        "sensitivity": interval(wilson_interval(tp, tp + fn)),
        "specificity": interval(wilson_interval(tn, tn + fp)),
        "precision": interval(wilson_interval(tp, tp + fp)),
        "override_rate": interval(wilson_interval(fp + fn, n)),
        "auc": hanley_mcneil_interval(metrics.get("auc"), tp + fn, tn + fp),
    }
    metrics["too_few_reviews"] = n < MIN_REVIEWS
    metrics["min_reviews"] = MIN_REVIEWS
    return metrics


def predictions_in(model_version=None, start=None, end=None):
    """Predictions of scans uploaded from `start` to `end` (dates inclusive), by one version or all."""
    rows = Prediction.objects.all()
    if model_version is not None:
        name = model_version.version if isinstance(model_version, ModelVersion) else str(model_version)
        rows = rows.filter(model_version__version=name)
    if start is not None:
        rows = rows.filter(scan__uploaded_at__gte=start_of_day(start))
    if end is not None:
        rows = rows.filter(scan__uploaded_at__lt=start_of_day(end + datetime.timedelta(days=1)))
    return rows


def prediction_counts(model_version=None, start=None, end=None):
    """{(week, counted): n} of the predictions of scans uploaded from `start` to `end` (dates
    inclusive), by one version or all (radiology.models.PredictionWeek's counts): the whole weeks from
    that summary, the days of the weeks the range cuts from their Prediction rows."""
    counts = {}
    rows = predictions_in(model_version, start, end)
    summary, covered = summarized_weeks(model_version, start, end, "scan__uploaded_at")
    if summary is not None:
        rows = rows.exclude(**covered) if covered else rows.none()
        for week, counted, n in (
            PredictionWeek.objects.filter(**summary)
            .order_by()
            .values("week", "counted")
            .annotate(total=Sum("n"))
            .values_list("week", "counted", "total")
        ):
            counts[week, counted] = n
    for row in rows.values_list("model_version_id", "scan__uploaded_at", "intended_use"):
        for _, key, increments in prediction_tallies(*row):
            counts[key["week"], key["counted"]] = counts.get((key["week"], key["counted"]), 0) + increments["n"]
    return counts


def outside_intended_use(model_version=None, start=None, end=None):
    """{predicted, flagged, share, share_interval, unchecked, by_reason: {code: count}, by_week: [...]}.

    `unchecked` counts predictions made before the check existed (counted as within)."""
    counts = prediction_counts(model_version, start, end)
    totals, weeks = {}, {}
    for (week, counted), n in counts.items():
        totals[counted] = totals.get(counted, 0) + n
        if counted in ("predicted", "flagged"):
            weeks.setdefault(week, {"predicted": 0, "flagged": 0})[counted] += n
    predicted, flagged = totals.get("predicted", 0), totals.get("flagged", 0)
    return {
        "predicted": predicted,
        "flagged": flagged,
        "share": flagged / predicted if predicted else None,
        "share_interval": interval(wilson_interval(flagged, predicted)),
        "unchecked": totals.get("unchecked", 0),
        "by_reason": {code: totals.get(f"flagged:{code}", 0) for code in REASON_TEXT},
        "by_week": [
            {
                "week_start": week.isoformat(),
                "predicted": weeks[week]["predicted"],
                "flagged": weeks[week]["flagged"],
                "share": weeks[week]["flagged"] / weeks[week]["predicted"],
            }
            for week in sorted(weeks)
        ],
    }


# --- the threshold the doctors' labels would choose ---------------------------------------

MIN_REVIEWS_FOR_THRESHOLD = 100


def reviewed_sample(version):
    """(labels 0/1, probabilities) of the version's reviewed scans within intended use."""
    pairs = list(
        ReviewOutcome.objects.filter(model_version=version, within_intended_use=True)
        .order_by("pk")
        .values_list("actual_positive", "probability")
    )
    return [int(actual) for actual, _ in pairs], [probability for _, probability in pairs]


def threshold_rule_of(version):
    return version.metadata.get("threshold_rule") or DEFAULT_RULE


def threshold_suggestion(version):
    """What the site's threshold rule would choose from the doctors' final labels of `version`'s
    within-use reviewed scans, with the metrics at it and at the version's own threshold; only from
    MIN_REVIEWS_FOR_THRESHOLD reviews and both classes (`available` False otherwise).

    It reads every reviewed scan of the version, so it is cached like the dashboard's figures: under
    the latest review (a correction is a new review) and the latest summary row, which change
    whenever the answer can."""
    if version is None:
        return None
    latest = (
        ReviewOutcome.objects.aggregate(outcome=Max("pk"))["outcome"],
        Review.objects.aggregate(review=Max("pk"))["review"],
    )
    key = (
        "threshold-suggestion:"
        + hashlib.sha256(repr((version.pk, version.threshold, threshold_rule_of(version), latest)).encode()).hexdigest()
    )
    suggestion = cache.get(key)
    if suggestion is None:
        suggestion = compute_threshold_suggestion(version)
        cache.set(key, suggestion, CACHE_SECONDS)
    return suggestion


def compute_threshold_suggestion(version):
    labels, scores = reviewed_sample(version)
    rule = threshold_rule_of(version)
    suggestion = {
        "version": version.version,
        "version_id": version.pk,
        "n": len(labels),
        "needed": MIN_REVIEWS_FOR_THRESHOLD,
        "rule": rule,
    }
    if len(labels) < MIN_REVIEWS_FOR_THRESHOLD or len(set(labels)) < 2:
        return {**suggestion, "available": False}
    threshold = choose_threshold(labels, scores, rule)
    return {
        **suggestion,
        "available": True,
        "threshold": threshold,
        "metrics": binary_metrics(labels, scores, threshold),
        "current": binary_metrics(labels, scores, version.threshold),
    }


# --- reliability from the doctors' labels -------------------------------------------------

RELIABILITY_BINS = 10


def reliability_of(scores):
    """The reliability view of {score bin: [positives, negatives]} (radiology.outcomes.score_bin): per
    equal-width probability bin, the count, the mean predicted probability (each score at its bin's
    middle) and the share the doctors labeled pneumonia; and their ECE. The same bins as
    classifier.calibration, each made of whole score bins."""
    width = SCORE_BINS // RELIABILITY_BINS
    grouped = {}
    for score, (positives, negatives) in sorted(scores.items()):
        row = grouped.setdefault(score // width, {"n": 0, "probability_sum": 0.0, "pneumonia": 0})
        row["n"] += positives + negatives
        row["probability_sum"] += (positives + negatives) * (score + 0.5) / SCORE_BINS
        row["pneumonia"] += positives
    total = sum(row["n"] for row in grouped.values())
    bins, error = [], 0.0
    for b in range(RELIABILITY_BINS):
        row = grouped.get(b)
        observed = row["pneumonia"] / row["n"] if row else None
        mean_probability = row["probability_sum"] / row["n"] if row else None
        if row:
            error += row["n"] / total * abs(observed - mean_probability)
        bins.append(
            {
                "low": b / RELIABILITY_BINS,
                "high": (b + 1) / RELIABILITY_BINS,
                "n": row["n"] if row else 0,
                "mean_probability": mean_probability,
                "observed": observed,
            }
        )
    return {"bins": bins, "ece": error if total else None}


# --- drift against the validation reference -----------------------------------------------

PSI_WATCH, PSI_DRIFT = 0.1, 0.25  # the usual population stability index bands
MIN_WEEK_SCANS = 30  # fewer scans in a week: its PSI is noise, shown as "too few"
PSI_FLOOR = 1e-4  # an empty bin counts as this share, so the logarithm stays finite
BANDS = ["stable", "watch", "drift", "too few"]
DRIFTING = {
    "probability": F("probability"),
    "image_score": Cast(KT("intended_use__score"), FloatField()),
}


def reference_of(version):
    """The version's `monitoring_reference` (decile bins of the validation split's probabilities and
    image scores; classifier fit_monitoring_reference), from its record or else its artifact."""
    from classifier.artifact import ArtifactError, read_metadata

    if version.metadata.get("monitoring_reference"):
        return version.metadata["monitoring_reference"]
    try:
        return read_metadata(version.resolved_artifact_path()).get("monitoring_reference")
    except (ArtifactError, OSError):
        return None


def population_stability_index(counts, expected_shares):
    """PSI = sum over bins of (actual - expected) * ln(actual / expected), shares floored at PSI_FLOOR."""
    total = sum(counts)
    if not total:
        return None
    index = 0.0
    for count, expected in zip(counts, expected_shares, strict=True):
        actual, expected = max(count / total, PSI_FLOOR), max(expected, PSI_FLOOR)
        index += (actual - expected) * math.log(actual / expected)
    return index


def band(index, n):
    if index is None or n < MIN_WEEK_SCANS:
        return "too few"
    return "stable" if index < PSI_WATCH else "watch" if index < PSI_DRIFT else "drift"


def weekly_bin_counts(rows, expression, edges):
    """{week: [count per reference bin]} in one grouped query (bin i: edges[i-1] <= value < edges[i])."""
    bins = Case(
        *[When(value__lt=edge, then=Value(i)) for i, edge in enumerate(edges)],
        default=Value(len(edges)),
        output_field=IntegerField(),
    )
    grouped = (
        rows.annotate(week=TruncWeek("scan__uploaded_at"), value=expression)
        .filter(value__isnull=False)
        .annotate(bin=bins)
        .order_by()
        .values("week", "bin")
        .annotate(n=Count("pk"))
    )
    weeks = {}
    for row in grouped:
        weeks.setdefault(row["week"], [0] * (len(edges) + 1))[row["bin"]] += row["n"]
    return weeks


def drift(version, start=None, end=None):
    """Per week, the PSI of the version's probabilities and image scores against its reference, with
    its band; None when the version has no reference."""
    reference = reference_of(version)
    if not reference:
        return None
    rows = predictions_in(version, start, end)
    weeks = {}
    for name, expression in DRIFTING.items():
        if name not in reference:
            continue
        for week, counts in weekly_bin_counts(rows, expression, reference[name]["edges"]).items():
            index = population_stability_index(counts, reference[name]["shares"])
            entry = weeks.setdefault(week, {"week_start": timezone.localtime(week).date().isoformat()})
            entry[f"{name}_n"] = sum(counts)
            entry[f"{name}_psi"] = index
            entry[f"{name}_band"] = band(index, sum(counts))
    return {
        "reference": reference.get("data"),
        "watch_from": PSI_WATCH,
        "drift_from": PSI_DRIFT,
        "min_scans": MIN_WEEK_SCANS,
        "by_week": [weeks[week] for week in sorted(weeks)],
    }

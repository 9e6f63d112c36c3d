"""The dashboard's figures, computed from the weekly summary the review action keeps (and, for the
days of a week a date range cuts, from ReviewOutcome rows), against the row-by-row computation they
replaced (kept here as the reference, on the binned scores and turnarounds the summary keeps) on
random data, and the summaries kept by the review action against a full rebuild."""

import datetime
import random
from datetime import UTC, timedelta

import numpy as np
import pytest
from django.db.models import Min, OuterRef, Subquery
from django.utils import timezone

from classifier.intended_use import REASON_TEXT
from classifier.metrics import binary_metrics, roc_auc
from radiology.actions import clinical
from radiology.dashboard import dashboard_metrics
from radiology.models import (
    Label,
    Prediction,
    PredictionWeek,
    Review,
    ReviewOutcome,
    ReviewWeek,
    ReviewWeekScore,
    ReviewWeekTurnaround,
    Scan,
)
from radiology.monitoring import RELIABILITY_BINS
from radiology.outcomes import (
    SCORE_BINS,
    binned_seconds,
    rebuild_prediction_summary,
    rebuild_review_outcomes,
    rebuild_review_summary,
    score_bin,
)
from tests.factories import ModelVersionFactory, PredictionFactory

# --- the reference: the row-by-row computation the dashboard used before it moved into SQL ---------


def reference_outcomes(model_version=None, start=None, end=None):
    """The within-use reviewed scans, one dict each."""
    latest_review = Review.objects.filter(scan=OuterRef("pk")).order_by("-created_at", "-pk")
    scans = (
        Scan.objects.filter(prediction__isnull=False, reviews__isnull=False)
        .exclude(prediction__intended_use__within=False)
        .annotate(
            final_label=Subquery(latest_review.values("final_label")[:1]), first_reviewed_at=Min("reviews__created_at")
        )
        .select_related("prediction", "prediction__model_version")
    )
    if model_version is not None:
        scans = scans.filter(prediction__model_version__version=model_version)
    outcomes = []
    for scan in scans:
        day = timezone.localdate(scan.uploaded_at)
        if (start and day < start) or (end and day > end):
            continue
        outcomes.append(
            {
                "uploaded_on": day,
                "model_version": scan.prediction.model_version.version,
                "actual": int(scan.final_label == Label.PNEUMONIA),
                "predicted": int(scan.prediction.label == Label.PNEUMONIA),
                "probability": scan.prediction.probability,
                "threshold": scan.prediction.threshold,
                "upload_to_prediction_s": (scan.prediction.created_at - scan.uploaded_at).total_seconds(),
                "prediction_to_review_s": (scan.first_reviewed_at - scan.prediction.created_at).total_seconds(),
            }
        )
    return outcomes


def reference_metrics_for(outcomes):
    actual = [o["actual"] for o in outcomes]
    metrics = binary_metrics(actual, [o["predicted"] for o in outcomes], 0.5)
    metrics["auc"] = roc_auc(actual, [score_bin(o["probability"]) for o in outcomes])
    thresholds = sorted({o["threshold"] for o in outcomes})
    metrics["threshold"] = thresholds[0] if len(thresholds) == 1 else None
    metrics["thresholds"] = thresholds
    metrics["override_rate"] = (
        sum(o["actual"] != o["predicted"] for o in outcomes) / len(outcomes) if outcomes else None
    )
    return metrics


def reference_stats(seconds):
    """Percentiles of the binned turnarounds, the mean of the exact ones."""
    if not seconds:
        return {"n": 0, "median_s": None, "p95_s": None, "mean_s": None}
    values = np.asarray(seconds, dtype=float)
    binned = np.asarray([binned_seconds(value) for value in seconds])
    return {
        "n": int(values.size),
        "median_s": float(np.median(binned)),
        "p95_s": float(np.percentile(binned, 95)),
        "mean_s": float(values.mean()),
    }


def reference_reliability(outcomes):
    """Each score at the middle of its bin, deciles as classifier.calibration's."""
    bins = [[] for _ in range(RELIABILITY_BINS)]
    for outcome in outcomes:
        middle = (score_bin(outcome["probability"]) + 0.5) / SCORE_BINS
        bins[min(int(middle * RELIABILITY_BINS), RELIABILITY_BINS - 1)].append((middle, outcome["actual"]))
    ece = sum(len(b) / len(outcomes) * abs(np.mean([a for _, a in b]) - np.mean([m for m, _ in b])) for b in bins if b)
    return {
        "bins": [
            {
                "low": i / RELIABILITY_BINS,
                "high": (i + 1) / RELIABILITY_BINS,
                "n": len(b),
                "mean_probability": float(np.mean([m for m, _ in b])) if b else None,
                "observed": float(np.mean([a for _, a in b])) if b else None,
            }
            for i, b in enumerate(bins)
        ],
        "ece": float(ece) if outcomes else None,
    }


def reference_dashboard(model_version=None, start=None, end=None):
    outcomes = reference_outcomes(model_version, start, end)
    metrics = reference_metrics_for(outcomes)
    metrics["turnaround"] = {
        name: reference_stats([o[f"{name}_s"] for o in outcomes])
        for name in ("upload_to_prediction", "prediction_to_review")
    }
    metrics["model_versions"] = sorted({o["model_version"] for o in outcomes})
    metrics["reliability"] = reference_reliability(outcomes)
    weeks = {}
    for outcome in outcomes:
        monday = outcome["uploaded_on"] - timedelta(days=outcome["uploaded_on"].weekday())
        weeks.setdefault(monday, []).append(outcome)
    metrics["by_week"] = []
    for monday, week in sorted(weeks.items()):
        week_metrics = reference_metrics_for(week)
        metrics["by_week"].append(
            {
                "week_start": monday.isoformat(),
                **{
                    key: week_metrics[key]
                    for key in ("n", "accuracy", "sensitivity", "specificity", "auc", "override_rate")
                },
            }
        )
    return metrics


# --- random data -------------------------------------------------------------------------------------

FIRST_UPLOAD = datetime.datetime(2026, 5, 4, 0, 0, tzinfo=UTC)


@pytest.fixture
def random_reviews(doctor, settings):
    """Two model versions, 160 predicted scans over seven weeks, about two thirds reviewed through the
    review action (some corrected later), tied scores and scores in one bin included, some outside
    intended use."""
    settings.TIME_ZONE = "Europe/Berlin"  # weeks and days in a zone that is not UTC
    rng = random.Random(11)
    versions = [ModelVersionFactory(version="v1", threshold=0.5), ModelVersionFactory(version="v2", threshold=0.35)]
    reviewed = []
    for _ in range(160):
        uploaded = FIRST_UPLOAD + timedelta(minutes=rng.randrange(7 * 7 * 24 * 60))
        # Many ties among the rounded; others share a bin of width 0.001 without being equal.
        probability = rng.choice([round(rng.random(), 2), rng.random(), 0.5 + rng.random() / 1000])
        reasons = rng.sample(["age", "view", "image"], rng.randrange(1, 3)) if rng.random() < 0.1 else []
        intended_use = None if rng.random() < 0.1 else {"within": not reasons, "reasons": reasons, "score": None}
        prediction = PredictionFactory(
            model_version=rng.choice(versions),
            probability=probability,
            intended_use=intended_use,
            scan__uploaded_at=uploaded,
            created_at=uploaded + timedelta(seconds=rng.uniform(1, 900)),
        )
        if rng.random() < 0.65:
            decision = "confirm" if rng.random() < 0.7 else "override"
            clinical.review_scan(doctor, prediction.scan, decision, "note")
            reviewed.append(prediction.scan)
    for scan in rng.sample(reviewed, 15):
        clinical.review_scan(
            doctor, scan, rng.choice(["confirm", "override"]), "second look", supersedes=scan.latest_review()
        )
    return versions


def assert_same(sql, reference):
    assert reference.keys() <= sql.keys()  # dashboard_metrics adds the intervals and the flagged, tested apart
    assert sql["auc"] == reference["auc"]  # exactly: the same Mann-Whitney U of the same binned scores
    for key, expected in reference.items():
        if key == "by_week":
            assert len(sql[key]) == len(expected)
            for week, expected_week in zip(sql[key], expected, strict=True):
                assert week["week_start"] == expected_week["week_start"]
                assert week["auc"] == expected_week["auc"]  # exactly, whether computed in SQL or not
                for key, value in expected_week.items():
                    assert week[key] == (pytest.approx(value, rel=1e-12) if isinstance(value, float) else value), key
        elif key == "turnaround":
            for name, stats in expected.items():
                assert sql[key][name] == (pytest.approx(stats, rel=1e-9) if stats["n"] else stats), name
        elif key == "reliability":
            assert sql[key]["ece"] == (expected["ece"] and pytest.approx(expected["ece"], rel=1e-12))
            for got, wanted in zip(sql[key]["bins"], expected["bins"], strict=True):
                assert got == {k: pytest.approx(v, rel=1e-12) if v else v for k, v in wanted.items()}
        else:
            assert sql[key] == (pytest.approx(expected, rel=1e-12) if isinstance(expected, float) else expected), key


FILTERS = [
    {},
    {"model_version": "v1"},
    {"model_version": "v2"},
    {"start": datetime.date(2026, 5, 12), "end": datetime.date(2026, 6, 1)},  # days of weeks at both ends
    {"start": datetime.date(2026, 5, 11), "end": datetime.date(2026, 6, 7)},  # whole weeks only
    {"start": datetime.date(2026, 5, 13), "end": datetime.date(2026, 5, 16)},  # within one week
    {"model_version": "v1", "end": datetime.date(2026, 5, 20)},
    {"model_version": "v2", "start": datetime.date(2026, 5, 27)},
    {"start": datetime.date(2027, 1, 1)},  # nothing in range
]


def reference_flagged(model_version=None, start=None, end=None):
    """outside_intended_use, one prediction at a time."""
    totals = {"predicted": 0, "flagged": 0, "unchecked": 0}
    by_reason, weeks = dict.fromkeys(REASON_TEXT, 0), {}
    for prediction in Prediction.objects.select_related("scan", "model_version"):
        day = timezone.localdate(prediction.scan.uploaded_at)
        if (model_version and prediction.model_version.version != model_version) or (start and day < start):
            continue
        if end and day > end:
            continue
        use = prediction.intended_use
        flagged = use is not None and use["within"] is False
        totals["predicted"] += 1
        totals["flagged"] += flagged
        totals["unchecked"] += use is None
        for code in by_reason:
            by_reason[code] += flagged and code in use["reasons"]
        week = weeks.setdefault(day - timedelta(days=day.weekday()), {"predicted": 0, "flagged": 0})
        week["predicted"] += 1
        week["flagged"] += flagged
    return {
        **totals,
        "share": totals["flagged"] / totals["predicted"] if totals["predicted"] else None,
        "by_reason": by_reason,
        "by_week": [
            {"week_start": monday.isoformat(), **week, "share": week["flagged"] / week["predicted"]}
            for monday, week in sorted(weeks.items())
        ],
    }


def test_sql_figures_equal_the_row_by_row_computation(random_reviews):
    for filters in FILTERS:
        reference = reference_dashboard(**filters)
        metrics = dashboard_metrics(**filters)
        assert_same(metrics, reference)
        flagged = metrics["outside_intended_use"]
        assert {key: flagged[key] for key in reference_flagged(**filters)} == reference_flagged(**filters), filters
    everything = reference_dashboard()
    assert everything["n"] > 90 and len(everything["by_week"]) == 7  # the data really covers the weeks
    assert everything["auc"] is not None and everything["threshold"] is None


def table(model):
    return sorted(model.objects.values_list(*[field.attname for field in model._meta.fields if field.name != "id"]))


def test_the_summaries_kept_by_the_review_action_equal_a_full_rebuild(random_reviews):
    maintained = table(ReviewOutcome)
    assert len(maintained) == Review.objects.values("scan").distinct().count()
    assert rebuild_review_outcomes() == len(maintained)
    assert table(ReviewOutcome) == maintained
    summary_models = (ReviewWeek, ReviewWeekScore, ReviewWeekTurnaround)
    maintained = [table(model) for model in summary_models]
    assert sum(row[5] for row in maintained[0]) == ReviewOutcome.objects.filter(within_intended_use=True).count()
    assert rebuild_review_summary() == sum(map(len, maintained))
    assert [table(model) for model in summary_models] == maintained
    maintained = table(PredictionWeek)
    assert sum(n for *_, counted, n in maintained if counted == "predicted") == Prediction.objects.count()
    assert {counted for *_, counted, _ in maintained} >= {"unchecked", "flagged", "flagged:age"}
    assert rebuild_prediction_summary() == len(maintained)
    assert table(PredictionWeek) == maintained


def test_a_correction_moves_the_scan_between_cells(doctor):
    prediction = PredictionFactory(probability=0.9, model_version=ModelVersionFactory(version="v1"))
    first = clinical.review_scan(doctor, prediction.scan, "confirm")
    assert dashboard_metrics()["confusion_matrix"] == [[0, 0], [0, 1]]
    clinical.review_scan(doctor, prediction.scan, "override", "Effusion, not pneumonia.", supersedes=first)
    assert dashboard_metrics()["confusion_matrix"] == [[0, 1], [0, 0]]
    assert ReviewOutcome.objects.get().actual_positive is False


def test_a_cached_figure_is_served_only_until_the_next_review(doctor, django_assert_num_queries):
    version = ModelVersionFactory(version="v1")
    first, second = (PredictionFactory(probability=p, model_version=version) for p in (0.9, 0.2))
    clinical.review_scan(doctor, first.scan, "confirm")
    computed = dashboard_metrics()
    with django_assert_num_queries(2):  # the latest review's and prediction's ids; the figures come from the cache
        assert dashboard_metrics() == computed
    clinical.review_scan(doctor, second.scan, "override", "Consolidation.")
    recomputed = dashboard_metrics()
    assert recomputed["n"] == 2 and recomputed["confusion_matrix"] == [[0, 0], [1, 1]]
    assert_same(recomputed, reference_dashboard())

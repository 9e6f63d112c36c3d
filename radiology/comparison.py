"""The challenger against the active model on the site's own confirmed cases.

A case is a scan both predicted (the champion in its Prediction, the challenger in its
ChallengerPrediction since its challenge began), within the intended use (the champion's check, the
one doctors saw), and a doctor reviewed; its truth is the latest review's final label. Each side's label is the one its prediction carried, at its own version's
threshold. Pages, the API and the promotion's audit event all read `compare_with_champion`.
"""

from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef, Subquery

from classifier.metrics import roc_auc
from classifier.statistics import delong_auc, delong_paired, mcnemar_exact_p, wilson_interval
from radiology.models import ChallengerPrediction, Label, Review, within_intended_use

CASES_SHOWN = 500  # the most recent cases listed; the figures cover all of them


def paired_rows(challenger):
    """The challenger's predictions on reviewed scans the champion predicted within its intended use,
    the most recent scan first."""
    if challenger.challenger_since is None:
        raise ValidationError(f"Model {challenger.version} has never been the challenger: there is nothing to compare.")
    reviews = Review.objects.filter(scan=OuterRef("scan_id"))
    latest_review = reviews.order_by("-created_at", "-pk")
    return list(
        ChallengerPrediction.objects.filter(
            model_version=challenger, created_at__gte=challenger.challenger_since, scan__prediction__isnull=False
        )
        .filter(Exists(reviews))
        .filter(within_intended_use("scan__prediction"))
        .annotate(final_label=Subquery(latest_review.values("final_label")[:1]))
        .select_related("scan", "scan__prediction", "scan__prediction__model_version")
        .order_by("-scan__uploaded_at", "-scan_id")
    )


def compare_with_champion(challenger):
    """-> the comparison as plain data (see the API's ComparisonSerializer).

    The champion is the version that predicted the most recent case: when the active version
    changed during the challenge, only the cases of the latest one are compared, so that each
    side is one version with one threshold."""
    rows = paired_rows(challenger)
    champion = rows[0].scan.prediction.model_version if rows else None
    if champion is not None:
        rows = [row for row in rows if row.scan.prediction.model_version_id == champion.pk]
    actual = [int(row.final_label == Label.PNEUMONIA) for row in rows]
    champion_said = [int(row.scan.prediction.label == Label.PNEUMONIA) for row in rows]
    challenger_said = [int(row.label == Label.PNEUMONIA) for row in rows]
    champion_scores = [row.scan.prediction.probability for row in rows]
    challenger_scores = [row.probability for row in rows]
    champion_right = [said == truth for said, truth in zip(champion_said, actual, strict=True)]
    challenger_right = [said == truth for said, truth in zip(challenger_said, actual, strict=True)]
    only_champion = sum(a and not b for a, b in zip(champion_right, challenger_right, strict=True))
    only_challenger = sum(b and not a for a, b in zip(champion_right, challenger_right, strict=True))
    paired_auc = delong_paired(actual, champion_scores, challenger_scores) if rows else None
    return {
        "challenger_since": challenger.challenger_since,
        "is_challenger": challenger.is_challenger,
        "n": len(rows),
        "champion": side(champion, actual, champion_said, champion_scores),
        "challenger": side(challenger, actual, challenger_said, challenger_scores),
        "disagreements": sum(a != b for a, b in zip(champion_said, challenger_said, strict=True)),
        "only_champion_correct": only_champion,
        "only_challenger_correct": only_challenger,
        "mcnemar_p": mcnemar_exact_p(only_champion, only_challenger) if rows else None,
        "delong_p": paired_auc.p_value if paired_auc else None,
        "cases_limit": CASES_SHOWN,
        "cases_truncated": len(rows) > CASES_SHOWN,
        "cases": [case(row) for row in rows[:CASES_SHOWN]],
    }


def side(version, actual, said, scores):
    """One model's figures on the cases, each with its 95 % interval."""
    tp = sum(1 for truth, label in zip(actual, said, strict=True) if truth and label)
    tn = sum(1 for truth, label in zip(actual, said, strict=True) if not truth and not label)
    positives = sum(actual)
    negatives = len(actual) - positives
    return {
        "version": version.version if version else None,
        "threshold": version.threshold if version else None,
        "accuracy": proportion(tp + tn, len(actual)),
        "sensitivity": proportion(tp, positives),
        "specificity": proportion(tn, negatives),
        "auc": auc_with_interval(actual, scores),
        "confusion_matrix": [[tn, negatives - tn], [positives - tp, tp]],
    }


def proportion(successes, n):
    interval = wilson_interval(successes, n)
    return {
        "value": successes / n if n else None,
        "low": interval[0] if interval else None,
        "high": interval[1] if interval else None,
    }


def auc_with_interval(actual, scores):
    estimate = delong_auc(actual, scores)
    if estimate is None:  # fewer than two cases of a class: the AUC, if defined, has no interval
        return {"value": roc_auc(actual, scores), "low": None, "high": None}
    return {"value": estimate.auc, "low": estimate.low, "high": estimate.high}


def case(row):
    prediction = row.scan.prediction
    return {
        "scan": row.scan_id,
        "uploaded_at": row.scan.uploaded_at,
        "final_label": row.final_label,
        "champion": {"probability": prediction.probability, "label": prediction.label},
        "challenger": {"probability": row.probability, "label": row.label},
    }


def disagreeing_cases(comparison):
    """The listed cases where the two models' labels differ: for a doctor to look at."""
    return [c for c in comparison["cases"] if c["champion"]["label"] != c["challenger"]["label"]]


def summary(comparison):
    """The comparison without its cases, as JSON-ready data (the promotion's audit event keeps it)."""
    since = comparison["challenger_since"]
    return {
        **{key: value for key, value in comparison.items() if key not in ("cases", "challenger_since")},
        "challenger_since": since.isoformat() if since else None,
    }

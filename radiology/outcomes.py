"""The maintained summary of reviewed scans (ReviewOutcome) that the dashboard aggregates.

`refresh_review_outcome` rewrites one scan's row from its prediction and reviews (inside the review
transaction); `rebuild_review_outcomes` recomputes every row the same way. Both go through
`computed_outcomes`, so a maintained row always equals a full recomputation.
"""

from django.db import transaction
from django.db.models import Min, OuterRef, Subquery

from radiology.models import Label, Review, ReviewOutcome, Scan

REBUILD_BATCH = 5000


def computed_outcomes(scans, review_model=Review, outcome_model=ReviewOutcome):
    """ReviewOutcome objects (unsaved) for the reviewed, predicted scans among `scans`.

    The models are parameters so that a migration can run this on its historical models.
    """
    latest_review = review_model.objects.filter(scan=OuterRef("pk")).order_by("-created_at", "-pk")
    # The migration that created the table ran before predictions had an intended-use check.
    checks_use = any(field.name == "within_intended_use" for field in outcome_model._meta.get_fields())
    rows = (
        scans.filter(prediction__isnull=False, reviews__isnull=False)
        .annotate(
            final_label=Subquery(latest_review.values("final_label")[:1]), first_reviewed_at=Min("reviews__created_at")
        )
        .order_by("pk")
        .values_list(
            "pk",
            "uploaded_at",
            "prediction__model_version_id",
            "prediction__probability",
            "prediction__threshold",
            "prediction__label",
            "prediction__created_at",
            "final_label",
            "first_reviewed_at",
            "prediction__intended_use" if checks_use else "pk",
        )
    )
    for (
        scan_id,
        uploaded_at,
        version_id,
        probability,
        threshold,
        label,
        predicted_at,
        final_label,
        reviewed_at,
        intended_use,
    ) in rows.iterator(chunk_size=REBUILD_BATCH):
        within = {"within_intended_use": not isinstance(intended_use, dict) or intended_use.get("within", True)}
        yield outcome_model(
            **(within if checks_use else {}),
            scan_id=scan_id,
            model_version_id=version_id,
            uploaded_at=uploaded_at,
            probability=probability,
            threshold=threshold,
            predicted_positive=label == Label.PNEUMONIA,
            actual_positive=final_label == Label.PNEUMONIA,
            upload_to_prediction_s=(predicted_at - uploaded_at).total_seconds(),
            prediction_to_review_s=(reviewed_at - predicted_at).total_seconds(),
        )


def refresh_review_outcome(scan_id):
    """Rewrite one scan's row (none when it has no review or no prediction). Call inside the transaction
    that changed its reviews, so that the summary commits with them."""
    ReviewOutcome.objects.filter(scan_id=scan_id).delete()
    for outcome in computed_outcomes(Scan.objects.filter(pk=scan_id)):
        outcome.save(force_insert=True)


def rebuild_review_outcomes(scans=None, review_model=Review, outcome_model=ReviewOutcome):
    """Recompute every row from scratch; returns how many reviewed scans there are."""
    scans = Scan.objects.all() if scans is None else scans
    count = 0
    with transaction.atomic():
        outcome_model.objects.all().delete()
        batch = []
        for outcome in computed_outcomes(scans, review_model, outcome_model):
            batch.append(outcome)
            if len(batch) == REBUILD_BATCH:
                outcome_model.objects.bulk_create(batch)
                count += len(batch)
                batch = []
        outcome_model.objects.bulk_create(batch)
    return count + len(batch)

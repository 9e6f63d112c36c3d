"""The challenger's predictions: recorded apart from the champion's, never shown to doctors."""

from django.db import IntegrityError, transaction

from radiology.models import ChallengerPrediction, Label


def record_challenger_prediction(scan_id, version, probability, inference_ms):
    """Save the challenger's answer once, labelled at its own version's threshold; a task delivered
    twice keeps the first. No audit event: nothing clinical changes and nobody acts on it."""
    threshold = version.threshold
    try:
        with transaction.atomic():
            return ChallengerPrediction.objects.create(
                scan_id=scan_id,
                model_version=version,
                probability=probability,
                label=Label.PNEUMONIA if probability >= threshold else Label.NORMAL,
                threshold=threshold,
                inference_ms=inference_ms,
            )
    except IntegrityError:
        return ChallengerPrediction.objects.get(scan_id=scan_id, model_version=version)

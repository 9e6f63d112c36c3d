"""The shadow run: the challenger predicts each new scan after the champion's prediction is saved.

`send_to_challenger` is called on commit of the champion's prediction, so the challenger can
neither delay nor change it: it runs later, in its own task, on its own queue
(`CHALLENGER_QUEUE`), and whatever goes wrong there is logged and stays there.
"""

import logging
import time

from django.conf import settings

from radiology.actions.challenger import record_challenger_prediction
from radiology.ingest import RejectedUpload, decode_upload
from radiology.models import ChallengerPrediction, Scan

log = logging.getLogger(__name__)


def send_to_challenger(scan_id):
    """Send the challenger's task for a scan the champion has just predicted, when there is a
    challenger. Never raises: the champion's prediction is saved whatever happens here."""
    from classifier.models import ModelVersion
    from radiology.tasks import predict_with_challenger

    try:
        challenger = ModelVersion.challenger()
        if challenger is None:
            return False
        predict_with_challenger.apply_async(args=[scan_id, challenger.pk], queue=settings.CHALLENGER_QUEUE, retry=False)
    except Exception as error:  # the broker or the database: the challenger misses this scan
        log.warning("The challenger will not see scan %s: %s", scan_id, error)
        return False
    return True


def run_challenger(scan_id, version_id):
    """Predict one scan with the challenger and store its answer apart. -> what happened, in a word.

    The challenger's model loads lazily, once per worker process (registry.get_predictor caches it
    by its files), and not at all in a worker that never runs a challenger."""
    from classifier.models import ModelVersion
    from classifier.registry import get_predictor

    version = ModelVersion.objects.filter(pk=version_id, is_challenger=True).first()
    if version is None:
        return "no longer the challenger"
    if ChallengerPrediction.objects.filter(scan_id=scan_id, model_version=version).exists():
        return "already predicted"
    scan = Scan.objects.filter(pk=scan_id).first()
    if scan is None:
        return "missing"
    try:
        with scan.image.open("rb") as stored:
            pixels = decode_upload(stored.read()).pixels
    except (RejectedUpload, FileNotFoundError) as error:
        log.warning("Challenger %s: scan %s cannot be read (%s)", version.version, scan_id, error)
        return "unreadable"
    predictor = get_predictor(version)
    started = time.perf_counter()
    probability = float(predictor.predict_proba([pixels])[0])
    inference_ms = (time.perf_counter() - started) * 1000
    record_challenger_prediction(scan_id, version, probability, inference_ms)
    return "predicted"

"""Slow checks of the shipped model on the real site-calibration images, when present."""

from pathlib import Path

import pytest
from django.conf import settings

from classifier.artifact import verified_metadata
from classifier.threshold import DEFAULT_RULE

SITE_CALIBRATION = Path(settings.BASE_DIR).parent / "shared" / "datasets" / "kermany-224" / "site-calibration"


def test_bundled_model_files_match_their_metadata():
    metadata = verified_metadata(settings.CLASSIFIER_MODEL_PATH)
    assert metadata["threshold_rule"] == DEFAULT_RULE
    assert metadata["threshold_source"].startswith("site calibration")
    assert metadata["site_calibration"]["sensitivity"] >= 0.97


@pytest.mark.slow
@pytest.mark.skipif(not SITE_CALIBRATION.is_dir(), reason="shared site-calibration images are absent")
def test_bundled_model_reproduces_its_site_calibration_metrics():
    from classifier.evaluate import evaluate_folder
    from classifier.inference import Predictor

    predictor = Predictor.load(settings.CLASSIFIER_MODEL_PATH)
    metrics = evaluate_folder(predictor, SITE_CALIBRATION)
    recorded = predictor.metadata["site_calibration"]
    assert metrics["confusion_matrix"] == recorded["confusion_matrix"]
    assert metrics["auc"] == pytest.approx(recorded["auc"], abs=1e-3)

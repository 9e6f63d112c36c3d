"""Calibrated probabilities: the fit, the measures, the artifact, the registry and the commands."""

import json
import shutil

import numpy as np
import pytest
from django.core.management import call_command

from classifier import artifact
from classifier.calibration import (
    apply,
    brier_score,
    calibrated_metadata,
    cross_validated_calibration,
    expected_calibration_error,
    fit_platt,
    out_of_fold,
    reliability_bins,
    sigmoid,
    uncalibrated,
)
from classifier.inference import Predictor
from classifier.registry import get_predictor, register_model
from tests.classifier.test_registry_commands import labeled_folder  # noqa: F401 (fixture)
from tests.support.tiny_model import generated_set


def test_ece_and_brier_against_hand_computed_values():
    labels = [0, 1, 1, 0]
    probabilities = [0.05, 0.95, 0.55, 0.45]
    # One image per bin: |0 - .05|, |1 - .95|, |1 - .55|, |0 - .45|, each weighing a quarter.
    assert expected_calibration_error(labels, probabilities) == pytest.approx(0.25)
    assert brier_score(labels, probabilities) == pytest.approx((0.0025 + 0.0025 + 0.2025 + 0.2025) / 4)
    bins = reliability_bins(labels, probabilities)
    assert [row["n"] for row in bins] == [1, 0, 0, 0, 1, 1, 0, 0, 0, 1]
    assert bins[5]["observed"] == 1.0 and bins[5]["mean_probability"] == pytest.approx(0.55)
    assert expected_calibration_error([1, 1], [1.0, 1.0]) == 0.0  # p = 1 falls in the last bin


def test_platt_recovers_the_scaling_of_over_confident_scores():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 4, 20000)
    labels = rng.random(z.size) < sigmoid(0.5 * z - 1.0)  # the truth: half as sure, shifted
    a, b = fit_platt(labels.astype(int), sigmoid(z))
    assert a == pytest.approx(0.5, abs=0.03) and b == pytest.approx(-1.0, abs=0.06)
    calibration = {"method": "platt", "a": a, "b": b}
    raw, calibrated = sigmoid(z), apply(calibration, sigmoid(z))
    assert expected_calibration_error(labels, calibrated) < 0.02 < expected_calibration_error(labels, raw)
    unseen = out_of_fold(labels.astype(int), raw, np.arange(z.size) // 4)
    assert expected_calibration_error(labels, unseen) < 0.02
    repeated = cross_validated_calibration(labels.astype(int), raw, np.arange(z.size) // 4, repeats=3)
    by_hand = [
        expected_calibration_error(labels, out_of_fold(labels.astype(int), raw, np.arange(z.size) // 4, seed=seed))
        for seed in range(3)
    ]
    assert repeated["ece"] == pytest.approx(np.mean(by_hand)) and repeated["ece_sd"] == pytest.approx(np.std(by_hand))


def test_a_sample_of_one_class_or_reversed_ranks_is_refused():
    with pytest.raises(ValueError, match="both"):
        fit_platt([1, 1, 1], [0.2, 0.5, 0.9])
    with pytest.raises(ValueError, match="ranks pneumonia below normal"):
        fit_platt([1, 1, 0, 0] * 10, [0.1, 0.2, 0.8, 0.9] * 10)


def test_the_threshold_moves_to_the_calibrated_scale_with_the_same_decisions():
    calibration = {"method": "platt", "a": 0.9, "b": -1.2}
    metadata = {"threshold": 0.65, "validation": {"threshold": 0.65, "auc": 0.99}}
    updated = calibrated_metadata(metadata, calibration)
    assert updated["probability_calibration"] == calibration and updated["validation"]["auc"] == 0.99
    assert updated["validation"]["threshold"] == updated["threshold"]
    raw = np.linspace(0.001, 0.999, 999)
    assert ((raw >= 0.65) == (apply(calibration, raw) >= updated["threshold"])).all()
    assert uncalibrated(calibration, updated["threshold"]) == pytest.approx(0.65)
    # A refit replaces the calibration, mapping from the raw scale again.
    refit = calibrated_metadata(updated, {"method": "platt", "a": 1.5, "b": 0.3})
    assert uncalibrated(refit["probability_calibration"], refit["threshold"]) == pytest.approx(0.65)


@pytest.fixture
def calibrated_copy(tiny_artifact, tmp_path):
    for suffix in (".keras", ".tflite", ".json"):
        shutil.copy(tiny_artifact.with_suffix(suffix), tmp_path / f"tiny{suffix}")
    return tmp_path / "tiny.keras"


@pytest.mark.django_db
def test_the_predictor_serves_calibrated_probabilities_and_old_versions_keep_the_raw_scale(calibrated_copy):
    old = register_model(calibrated_copy)  # registered before the artifact was calibrated
    calibration = {"method": "platt", "a": 0.5, "b": -0.4}
    artifact.write_metadata(calibrated_copy, calibrated_metadata(artifact.read_metadata(calibrated_copy), calibration))
    images, _ = generated_set(6, seed=5)

    predictor = Predictor.load(calibrated_copy)
    raw = predictor.predict_proba(images, calibrated=False)
    assert np.allclose(predictor.predict_proba(images), apply(calibration, raw), atol=1e-6)
    assert predictor.threshold == pytest.approx(apply(calibration, [0.5])[0])

    old_view = get_predictor(old)
    assert old_view.calibration is None and old_view.threshold == 0.5
    assert np.allclose(old_view.predict_proba(images), raw)


@pytest.mark.django_db
def test_calibrate_probabilities_and_evaluate_before_and_after(calibrated_copy, labeled_folder, tmp_path, capsys):  # noqa: F811
    call_command("calibrate_probabilities", model=str(calibrated_copy), data=str(labeled_folder))
    out = capsys.readouterr().out
    assert "ECE" in out and "5-fold by patient" in out
    metadata = artifact.verified_metadata(calibrated_copy)
    assert metadata["probability_calibration"]["n"] == 40

    call_command("evaluate_model", model=str(calibrated_copy), data=str(labeled_folder), json=str(tmp_path / "a.json"))
    call_command(
        "evaluate_model",
        model=str(calibrated_copy),
        data=str(labeled_folder),
        json=str(tmp_path / "b.json"),
        uncalibrated=True,
    )
    after, before = (json.loads((tmp_path / name).read_text()) for name in ("a.json", "b.json"))
    assert after["confusion_matrix"] == before["confusion_matrix"]  # same decisions
    assert after["auc"] == pytest.approx(before["auc"])
    assert after["threshold"] == pytest.approx(metadata["threshold"])
    assert before["threshold"] == pytest.approx(0.5)
    assert after["ece"] != before["ece"]

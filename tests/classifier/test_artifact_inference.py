"""The artifact and the Predictor, on the tiny test model: learning, metadata, sha256 checks,
the fast path against Keras, Grad-CAM and the heatmap images."""

import json
import shutil

import cv2
import numpy as np
import pytest

from classifier.artifact import (
    ArtifactError,
    load_keras_model,
    read_metadata,
    save_artifact,
    tflite_path,
    verified_metadata,
    write_metadata,
)
from classifier.explain import heatmap_png, heatmap_rgba, overlay_png
from classifier.inference import Predictor
from classifier.metrics import binary_metrics
from classifier.preprocess import preprocess_views
from tests.support.tiny_model import TINY_INPUT_SIZE, TINY_VERSION, generated_set, generated_xray


@pytest.fixture(scope="module")
def predictor(tiny_artifact):
    return Predictor.load(tiny_artifact)


@pytest.fixture(scope="module")
def unseen():
    return generated_set(80, seed=99)


def copy_artifact(source, folder):
    for suffix in (".keras", ".tflite", ".json"):
        shutil.copy(source.with_suffix(suffix), folder / f"model{suffix}")
    return folder / "model.keras"


def test_tiny_model_really_learns_the_separable_set(predictor, unseen):
    images, labels = unseen
    metrics = binary_metrics(labels, predictor.predict_proba(images), predictor.threshold)
    assert metrics["auc"] > 0.98
    assert metrics["accuracy"] > 0.9


def test_metadata_round_trip(tiny_artifact, tmp_path):
    metadata = verified_metadata(tiny_artifact)
    for key in (
        "version",
        "backbone",
        "input_size",
        "preprocessing",
        "threshold",
        "validation",
        "training",
        "sha256",
        "tflite_sha256",
        "created_at",
        "tensorflow_version",
        "keras_version",
    ):
        assert key in metadata, key
    assert metadata["version"] == TINY_VERSION and metadata["input_size"] == TINY_INPUT_SIZE
    copied = copy_artifact(tiny_artifact, tmp_path)
    write_metadata(copied, metadata)
    assert read_metadata(copied) == metadata
    assert json.loads(copied.with_suffix(".json").read_text()) == metadata


def test_changed_model_file_is_refused(tiny_artifact, tmp_path):
    copied = copy_artifact(tiny_artifact, tmp_path)
    with open(copied, "ab") as file:
        file.write(b"\0")
    with pytest.raises(ArtifactError, match="sha256 mismatch"):
        Predictor.load(copied)


def test_changed_fast_path_file_is_refused(tiny_artifact, tmp_path):
    copied = copy_artifact(tiny_artifact, tmp_path)
    tflite = tflite_path(copied)
    tflite.write_bytes(tflite.read_bytes()[:-1] + b"\1")
    with pytest.raises(ArtifactError, match="sha256 mismatch"):
        Predictor.load(copied)


def test_missing_metadata_or_other_preprocessing_is_refused(tiny_artifact, tmp_path):
    copied = copy_artifact(tiny_artifact, tmp_path)
    metadata = read_metadata(copied)
    metadata["preprocessing"]["clahe"]["clip_limit"] = 4.0
    write_metadata(copied, metadata)
    with pytest.raises(ArtifactError, match="preprocessing"):
        verified_metadata(copied)
    copied.with_suffix(".json").unlink()
    with pytest.raises(ArtifactError, match="no metadata"):
        Predictor.load(copied)


def test_fast_path_equals_keras_within_1e4(predictor, unseen):
    batch = predictor.preprocess(unseen[0][:24])
    fast, reference = predictor.predict_inputs(batch), predictor.predict_inputs_keras(batch)
    assert np.abs(fast - reference).max() < 1e-4
    assert abs(predictor.predict_inputs(batch[:1])[0] - reference[0]) < 1e-4


def test_test_time_views_are_averaged_like_the_keras_model_would(tiny_artifact, tmp_path, unseen):
    keep = {
        key: value
        for key, value in read_metadata(tiny_artifact).items()
        if key in ("version", "backbone", "input_size", "gradcam_layer", "threshold")
    }
    keras_model = load_keras_model(tiny_artifact)
    save_artifact(keras_model, tmp_path / "tta.keras", keep, test_time_zooms=(1.0, 0.9))
    predictor = Predictor.load(tmp_path / "tta.keras")
    assert predictor.metadata["preprocessing"]["test_time_zooms"] == [1.0, 0.9]
    images = unseen[0][:6]
    expected = [np.mean(keras_model(preprocess_views(image, TINY_INPUT_SIZE, zooms=(1.0, 0.9)))) for image in images]
    np.testing.assert_allclose(predictor.predict_proba(images), expected, atol=1e-4)


def test_predict_proba_shapes(predictor, unseen):
    probabilities = predictor.predict_proba(unseen[0][:5])
    assert probabilities.shape == (5,) and probabilities.dtype == np.float32
    assert np.all((probabilities >= 0) & (probabilities <= 1))
    assert predictor.predict_proba([]).shape == (0,)


def test_gradcam_shape_and_range(predictor):
    heatmap = predictor.gradcam(generated_xray(1, np.random.default_rng(5)))
    assert heatmap.shape == (TINY_INPUT_SIZE, TINY_INPUT_SIZE) and heatmap.dtype == np.float32
    assert heatmap.min() >= 0.0 and heatmap.max() == pytest.approx(1.0)


def test_heatmap_and_overlay_pngs(predictor):
    image = np.clip(generated_xray(1, np.random.default_rng(6), size=200), 0, 255).astype(np.uint16) * 100
    heatmap = predictor.gradcam(image)
    rgba = cv2.imdecode(np.frombuffer(heatmap_png(heatmap, 300, 200), np.uint8), cv2.IMREAD_UNCHANGED)
    assert rgba.shape == (200, 300, 4)
    assert heatmap_rgba(np.zeros((8, 8)), 8, 8)[:, :, 3].max() == 0  # nothing seen: transparent
    overlay = cv2.imdecode(np.frombuffer(overlay_png(image, heatmap), np.uint8), cv2.IMREAD_UNCHANGED)
    assert overlay.shape == (200, 200, 3)
    with pytest.raises(ValueError):
        heatmap_png(np.zeros(5))

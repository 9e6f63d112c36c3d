"""The intended-use check: each reason, the statistics' round trip through the artifact, old artifacts."""

import shutil
from datetime import date

import numpy as np
import pytest
from PIL import Image

from classifier import artifact
from classifier.data import LabeledImage
from classifier.inference import Predictor
from classifier.intended_use import (
    FeatureStatistics,
    assess,
    describe,
    ledoit_wolf,
    outside_population,
    threshold_for,
)
from classifier.intended_use_fit import fit_intended_use
from tests.support.tiny_model import generated_set

CHILDREN = {"min_age_years": 1, "max_age_years": 5, "source": "test"}


def check(**overrides):
    arguments = {
        "population": CHILDREN,
        "birth_date": date(2020, 6, 1),
        "study_date": date(2023, 6, 1),
        "dicom_study": {},
        "image_score": None,
        "image_threshold": None,
        **overrides,
    }
    return assess(**arguments)


def test_a_child_in_a_plain_image_is_within_intended_use():
    assert check().as_json() == {"within": True, "reasons": [], "score": None}


@pytest.mark.parametrize(
    ("birth_date", "study_date", "outside"),
    [
        (date(2020, 6, 1), date(2021, 5, 31), True),  # 11 months old
        (date(2020, 6, 1), date(2021, 6, 1), False),  # one today
        (date(2020, 6, 1), date(2026, 5, 31), False),  # five, a day before six
        (date(2020, 6, 1), date(2026, 6, 1), True),  # six
        (date(1980, 4, 2), date(2026, 1, 1), True),  # an adult
    ],
)
def test_age_is_taken_in_whole_years_on_the_study_date(birth_date, study_date, outside):
    assert outside_population(CHILDREN, birth_date, study_date) is outside
    assert ("age" in check(birth_date=birth_date, study_date=study_date).reasons) is outside


def test_a_model_that_declares_no_population_checks_no_age():
    assert check(population=None, birth_date=date(1950, 1, 1)).within


@pytest.mark.parametrize(
    ("study", "outside"),
    [
        ({"modality": "DX", "body_part": "CHEST", "view_position": "PA"}, False),
        ({"modality": "CR", "view_position": "AP"}, False),
        ({"modality": "MR"}, True),
        ({"modality": "CT", "body_part": "CHEST"}, True),
        ({"modality": "DX", "body_part": "HAND"}, True),
        ({"modality": "DX", "view_position": "LL"}, True),
        ({"modality": "CR", "view_position": "RL"}, True),
        ({"modality": "DX", "view_position": "LATERAL"}, True),
        ({}, False),
    ],
)
def test_the_dicom_header_tells_a_frontal_chest_radiograph(study, outside):
    assert ("view" in check(dicom_study=study).reasons) is outside


def test_an_image_far_from_the_training_features_is_flagged():
    rng = np.random.default_rng(0)
    training = [rng.normal(0, 1, (400, 6)), rng.normal(5, 2, (400, 3))]
    statistics = FeatureStatistics.fit(training, ["a", "b"])
    typical = statistics.scores([rng.normal(0, 1, (50, 6)), rng.normal(5, 2, (50, 3))])
    far = statistics.scores([rng.normal(0, 1, (1, 6)) + 8, rng.normal(5, 2, (1, 3))])
    threshold = float(np.quantile(typical, 0.98))
    assert far[0] > threshold
    result = check(image_score=far[0], image_threshold=threshold)
    assert result.reasons == ["image"] and result.score == pytest.approx(far[0])
    assert check(image_score=float(np.median(typical)), image_threshold=threshold).within


def test_every_reason_at_once_in_words():
    result = check(
        birth_date=date(1970, 1, 1),
        dicom_study={"modality": "DX", "view_position": "LL"},
        image_score=50.0,
        image_threshold=10.0,
    )
    assert result.as_json() == {"within": False, "reasons": ["age", "view", "image"], "score": 50.0}
    assert describe(result.reasons) == (
        "the patient's age is outside the ages the model was trained on; "
        "the image is not a frontal chest radiograph (DICOM header); "
        "the image does not look like the X-rays the model was trained on"
    )


def test_ledoit_wolf_shrinks_towards_a_scaled_identity():
    rng = np.random.default_rng(1)
    rows = rng.normal(0, 1, (20, 30))  # fewer rows than columns: the plain covariance is singular
    covariance, shrinkage = ledoit_wolf(rows - rows.mean(axis=0))
    assert 0 < shrinkage <= 1
    assert np.linalg.matrix_rank(covariance) == 30


# --- the artifact's statistics -----------------------------------------------------------


def write_images(folder, images, labels):
    listed = []
    for i, (pixels, label) in enumerate(zip(images, labels)):
        path = folder / f"img-{i:03d}.png"
        Image.fromarray(pixels).save(path)
        listed.append(LabeledImage(path, int(label), f"p{i}"))
    return listed


@pytest.fixture(scope="module")
def fitted_artifact(tiny_artifact, tmp_path_factory):
    """A copy of the tiny model with the image check fitted on generated X-rays."""
    folder = tmp_path_factory.mktemp("fitted")
    for suffix in (".keras", ".tflite", ".json"):
        shutil.copy(tiny_artifact.with_suffix(suffix), folder / f"tiny{suffix}")
    keras_path = folder / "tiny.keras"
    images_folder = tmp_path_factory.mktemp("generated")
    train = write_images(images_folder, *generated_set(120, seed=11))
    validation_folder = tmp_path_factory.mktemp("generated-validation")
    validation = write_images(validation_folder, *generated_set(50, seed=12))
    fit_intended_use(keras_path, train, validation, CHILDREN, false_flag_rate=0.02)
    return keras_path


def test_the_statistics_are_stored_hash_checked_and_used(fitted_artifact):
    metadata = artifact.verified_metadata(fitted_artifact)
    image_check = metadata["intended_use"]["image_check"]
    features = artifact.features_path(fitted_artifact)
    assert image_check["file"] == features.name
    assert image_check["sha256"] == artifact.sha256_file(features)
    assert image_check["validation_flagged"] <= 0.02 + 1e-9
    assert metadata["intended_use"]["population"] == CHILDREN

    predictor = Predictor.load(fitted_artifact)
    assert predictor.population == CHILDREN
    assert predictor.image_threshold == pytest.approx(image_check["threshold"])
    like_training, _ = generated_set(20, seed=13)
    rng = np.random.default_rng(3)
    noise = [rng.integers(0, 256, (80, 80), dtype=np.uint8) for _ in range(5)]
    scores = predictor.image_scores(like_training + noise)
    assert np.mean(scores[:20] > predictor.image_threshold) <= 0.1
    assert (scores[20:] > predictor.image_threshold).all()


def test_a_changed_statistics_file_is_refused(fitted_artifact, tmp_path):
    for suffix in (".keras", ".tflite", ".json", ".features.npz"):
        shutil.copy(fitted_artifact.with_suffix(suffix), tmp_path / f"tiny{suffix}")
    copy = tmp_path / "tiny.keras"
    Predictor.load(copy)  # the intact copy loads
    with open(artifact.features_path(copy), "ab") as file:
        file.write(b"\0")
    with pytest.raises(artifact.ArtifactError, match="sha256 mismatch .*features.npz"):
        Predictor.load(copy)
    artifact.features_path(copy).unlink()
    with pytest.raises(artifact.ArtifactError, match="features.npz is missing"):
        Predictor.load(copy)


def test_an_old_artifact_without_statistics_loads_without_the_image_check(tiny_artifact):
    predictor = Predictor.load(tiny_artifact)
    assert "intended_use" not in predictor.metadata
    assert predictor.image_check is None and predictor.image_threshold is None
    assert predictor.image_scores([np.zeros((64, 64), dtype=np.uint8)]) is None
    assert predictor.population is None


def test_the_threshold_flags_at_most_the_stated_share():
    scores = np.arange(742, dtype=float)
    threshold = threshold_for(scores, 0.02)
    assert (scores > threshold).sum() == 14  # floor(0.02 * 742); 15 would be 2.02 %

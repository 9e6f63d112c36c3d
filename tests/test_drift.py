"""Weekly drift of probabilities and image scores against the validation reference (PSI, bands)."""

import math
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from radiology.dashboard import dashboard_metrics
from radiology.monitoring import band, drift, population_stability_index
from tests.factories import ModelVersionFactory, PredictionFactory
from tests.support.api import token_client

MONDAY = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
# Two bins each: below 0.5 and from 0.5 for probabilities, below 10 and from 10 for image scores.
REFERENCE = {
    "data": "validation-split",
    "probability": {"edges": [0.5], "shares": [0.5, 0.5], "n": 100},
    "image_score": {"edges": [10.0], "shares": [0.5, 0.5], "n": 100},
}


def test_psi_against_hand_computed_values():
    assert population_stability_index([50, 50], [0.5, 0.5]) == 0.0
    expected = (0.8 - 0.5) * math.log(0.8 / 0.5) + (0.2 - 0.5) * math.log(0.2 / 0.5)
    assert population_stability_index([40, 10], [0.5, 0.5]) == pytest.approx(expected)  # 0.4159
    assert population_stability_index([0, 0], [0.5, 0.5]) is None
    assert [band(0.05, 30), band(0.1, 30), band(0.3, 30), band(0.3, 29)] == ["stable", "watch", "drift", "too few"]


@pytest.fixture
def version_with_reference(db):
    version = ModelVersionFactory(version="m1", metadata={"monitoring_reference": REFERENCE})
    # Week 1: like the reference. Week 2: 32 of 40 above 0.5 and every image far from the training.
    for i in range(40):
        PredictionFactory(
            model_version=version,
            probability=0.2 if i % 2 else 0.8,
            intended_use={"within": True, "reasons": [], "score": 5.0 if i % 2 else 15.0},
            scan__uploaded_at=MONDAY,
        )
        PredictionFactory(
            model_version=version,
            probability=0.9 if i < 32 else 0.1,
            intended_use={"within": False, "reasons": ["image"], "score": 50.0},
            scan__uploaded_at=MONDAY + timedelta(days=7),
        )
    PredictionFactory(model_version=version, probability=0.5, intended_use=None, scan__uploaded_at=MONDAY)
    return version


def test_weekly_drift_of_probabilities_and_image_scores(version_with_reference):
    result = drift(version_with_reference)
    first, second = result["by_week"]
    assert first["week_start"] == "2026-03-02" and second["week_start"] == "2026-03-09"
    # Week 1: 21 of 41 probabilities from 0.5 (the unchecked scan's 0.5 included), scores 20 / 20.
    assert first["probability_n"] == 41 and first["image_score_n"] == 40
    assert first["image_score_psi"] == 0.0 and first["image_score_band"] == "stable"
    assert first["probability_band"] == "stable"
    assert second["probability_psi"] == pytest.approx(
        (0.8 - 0.5) * math.log(0.8 / 0.5) + (0.2 - 0.5) * math.log(0.2 / 0.5)
    )
    assert second["probability_band"] == "drift"
    # Every image score above the reference's upper bin: the empty bin is floored at 1e-4.
    floor = 1e-4
    expected = (floor - 0.5) * math.log(floor / 0.5) + (1 - 0.5) * math.log(1 / 0.5)
    assert second["image_score_psi"] == pytest.approx(expected) and second["image_score_band"] == "drift"


def test_no_reference_no_drift(db):
    version = ModelVersionFactory(version="bare", artifact_path="nonexistent.keras")
    assert drift(version) is None


def test_the_dashboard_and_the_api_show_the_drift_of_a_chosen_version(
    admin_role_client, admin_user, version_with_reference
):
    assert dashboard_metrics()["drift"] is None  # all versions together: no one reference
    page = admin_role_client.get(reverse("dashboard"), {"model_version": "m1"}).content.decode()
    assert 'id="drift-by-week"' in page and 'data-band="drift"' in page
    body = token_client(admin_user).get("/api/v1/metrics/", {"model_version": "m1"}).json()
    assert [week["probability_band"] for week in body["drift"]["by_week"]] == ["stable", "drift"]


def test_fit_monitoring_reference_stores_decile_bins(tiny_artifact, tmp_path):
    import shutil

    import cv2
    from django.core.management import call_command

    from classifier.artifact import read_metadata, verified_metadata
    from tests.support.tiny_model import generated_set

    for suffix in (".keras", ".tflite", ".json"):
        shutil.copy(tiny_artifact.with_suffix(suffix), tmp_path / f"tiny{suffix}")
    folder = tmp_path / "reference"
    folder.mkdir()
    for i, image in enumerate(generated_set(40, seed=31)[0]):
        cv2.imwrite(str(folder / f"scan{i}.png"), image)
    call_command("fit_monitoring_reference", model=str(tmp_path / "tiny.keras"), data=str(folder))
    reference = read_metadata(tmp_path / "tiny.keras")["monitoring_reference"]
    verified_metadata(tmp_path / "tiny.keras")  # still loads
    probability = reference["probability"]
    assert probability["n"] == 40 and len(probability["shares"]) == len(probability["edges"]) + 1
    assert sum(probability["shares"]) == pytest.approx(1.0)
    assert "image_score" not in reference  # the tiny model has no image check

"""The model registry and the management commands, on the tiny test model."""

import importlib
import json

import cv2
import numpy as np
import pytest
from django.core.management import call_command

from classifier.artifact import ArtifactError, verified_metadata
from classifier.evaluate import OVERLAYS
from classifier.metrics import METRIC_KEYS
from classifier.models import ModelVersion
from classifier.registry import calibrate_model, ensure_bundled_model, get_predictor, register_model
from tests.factories import ModelVersionFactory
from tests.support.tiny_model import TINY_VERSION, generated_set


@pytest.fixture(scope="module")
def labeled_folder(tmp_path_factory):
    """NORMAL/ and PNEUMONIA/ of generated scans, in the file kinds a site hands over."""
    folder = tmp_path_factory.mktemp("site")
    images, labels = generated_set(40, seed=21)
    for i, (image, label) in enumerate(zip(images, labels)):
        class_folder = folder / ("PNEUMONIA" if label else "NORMAL")
        class_folder.mkdir(exist_ok=True)
        if i % 3 == 0:
            cv2.imwrite(str(class_folder / f"scan{i}.png"), image.astype(np.uint16) * 257)  # 16-bit
        elif i % 3 == 1:
            cv2.imwrite(str(class_folder / f"scan{i}.jpeg"), cv2.merge([image, image, image]))
        else:
            cv2.imwrite(str(class_folder / f"scan{i}.png"), cv2.resize(image, (120, 90)))
    return folder


@pytest.mark.django_db
def test_register_records_metadata_and_is_idempotent(tiny_artifact):
    version = register_model(tiny_artifact)
    assert version.version == TINY_VERSION and not version.is_active
    assert version.sha256 == version.metadata["sha256"] and version.threshold == 0.5
    assert set(version.evaluation["validation"]) == set(METRIC_KEYS)
    assert version.resolved_artifact_path() == tiny_artifact.resolve()
    again = register_model(tiny_artifact, activate=True)
    assert again.pk == version.pk and ModelVersion.active() == again


@pytest.mark.django_db
def test_register_refuses_other_files_under_a_known_version(tiny_artifact):
    register_model(tiny_artifact)
    ModelVersion.objects.filter(version=TINY_VERSION).update(sha256="0" * 64)
    with pytest.raises(ArtifactError, match="already registered"):
        register_model(tiny_artifact)


@pytest.mark.django_db
def test_ensure_bundled_model_activates_once(tiny_artifact, settings):
    settings.CLASSIFIER_MODEL_PATH = tiny_artifact
    first = ensure_bundled_model()
    assert first.is_active and ensure_bundled_model().pk == first.pk
    assert ModelVersion.objects.count() == 1


@pytest.mark.django_db
def test_ensure_bundled_model_keeps_the_version_in_force_and_registers_the_new_one_inactive(tiny_artifact, settings):
    running = ModelVersionFactory(version="running", is_active=True)
    settings.CLASSIFIER_MODEL_PATH = tiny_artifact

    assert ensure_bundled_model().pk == running.pk

    bundled = ModelVersion.objects.get(version=TINY_VERSION)
    assert not bundled.is_active and ModelVersion.active().pk == running.pk


@pytest.mark.django_db
def test_versions_registered_from_the_old_bundled_path_point_to_their_own_folder():
    from django.apps import apps

    migration = importlib.import_module("classifier.migrations.0003_bundled_models_in_version_folders")
    ((sha256, folder_path),) = migration.MOVED.items()
    old = ModelVersionFactory(version="mnv2-050-2026-11-26", artifact_path=migration.OLD_PATH, sha256=sha256)
    calibrated = ModelVersionFactory(
        version="mnv2-050-2026-11-26-cal-x", artifact_path=migration.OLD_PATH, sha256=sha256
    )
    other = ModelVersionFactory(version="other", artifact_path=migration.OLD_PATH, sha256="f" * 64)

    migration.forwards(apps, None)

    for version in (old, calibrated):
        version.refresh_from_db()
        assert version.artifact_path == folder_path
        assert verified_metadata(version.resolved_artifact_path())["sha256"] == sha256  # the files are shipped
    other.refresh_from_db()
    assert other.artifact_path == migration.OLD_PATH


@pytest.mark.django_db
def test_predictor_is_loaded_once_per_file_and_keeps_each_versions_threshold(tiny_artifact, labeled_folder):
    base = register_model(tiny_artifact, activate=True)
    predictor = get_predictor(base)
    assert get_predictor(base) is predictor
    calibrated = calibrate_model(labeled_folder, rule="sensitivity>=0.9", site="st-elsewhere")
    assert calibrated.version == f"{TINY_VERSION}-cal-st-elsewhere"
    assert calibrated.parent == base and not calibrated.is_active
    assert calibrated.sha256 == base.sha256 and calibrated.artifact_path == base.artifact_path
    site = calibrated.evaluation["site_calibration"]
    assert site["n"] == 40 and site["sensitivity"] >= 0.9 and site["threshold"] == calibrated.threshold
    assert calibrated.metadata["calibration"]["data"]["images"] == 40
    view = get_predictor(calibrated)
    assert view.threshold == calibrated.threshold and predictor.threshold == 0.5
    assert view._interpreter is predictor._interpreter  # same loaded model
    assert calibrate_model(labeled_folder, site="st-elsewhere").version.endswith("-st-elsewhere-2")


@pytest.mark.django_db
def test_get_predictor_refuses_a_file_that_is_not_the_registered_one(tiny_artifact):
    version = register_model(tiny_artifact)
    version.sha256 = "f" * 64
    with pytest.raises(ArtifactError, match="not the file registered"):
        get_predictor(version)


@pytest.mark.django_db
def test_evaluate_model_command_writes_exact_keys_and_plots(tiny_artifact, labeled_folder, tmp_path, capsys):
    register_model(tiny_artifact, activate=True)
    call_command(
        "evaluate_model", data=str(labeled_folder), json=str(tmp_path / "m.json"), plots=str(tmp_path / "plots")
    )
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert list(metrics) == [*METRIC_KEYS, "ece", "brier"]
    assert metrics["n"] == 40 and metrics["auc"] > 0.95
    assert 0 <= metrics["ece"] <= 1 and 0 <= metrics["brier"] <= 1
    assert "sensitivity" in capsys.readouterr().out
    for name in ("roc_curve.png", "confusion_matrix.png", "reliability.png"):
        assert (tmp_path / "plots" / name).read_bytes().startswith(b"\x89PNG")
    overlays = sorted((tmp_path / "plots" / "gradcam").glob("*.png"))
    assert len(overlays) == OVERLAYS and all(p.read_bytes().startswith(b"\x89PNG") for p in overlays)


def test_evaluate_model_command_with_model_path_needs_no_registry(tiny_artifact, labeled_folder, tmp_path):
    call_command("evaluate_model", data=str(labeled_folder), model=str(tiny_artifact), json=str(tmp_path / "m.json"))
    assert json.loads((tmp_path / "m.json").read_text())["threshold"] == 0.5


@pytest.mark.django_db
def test_register_and_calibrate_commands(tiny_artifact, labeled_folder, capsys):
    call_command("register_model", str(tiny_artifact), activate=True)
    assert ModelVersion.active().version == TINY_VERSION
    call_command("calibrate_model", data=str(labeled_folder), rule="youden")
    calibrated = ModelVersion.objects.exclude(version=TINY_VERSION).get()
    assert calibrated.metadata["calibration"]["rule"] == "youden"
    assert "recorded" in capsys.readouterr().out

    call_command("calibrate_model", data=str(labeled_folder), rule="youden", activate=True)
    from radiology.models import AuditEvent

    activations = AuditEvent.objects.filter(action="model_version.activated", actor=None)
    assert [event.after["active"] for event in activations.order_by("pk")] == [
        TINY_VERSION,
        ModelVersion.active().version,
    ]

"""train_model end to end on a few generated scans: split, two phases, calibration, artifact."""

import cv2
import pytest
from django.core.management import call_command

from classifier.artifact import verified_metadata
from classifier.inference import Predictor
from tests.support.tiny_model import generated_set


def write_folder(folder, n, seed):
    images, labels = generated_set(n, seed)
    for i, (image, label) in enumerate(zip(images, labels)):
        class_folder = folder / ("PNEUMONIA" if label else "NORMAL")
        class_folder.mkdir(parents=True, exist_ok=True)
        name = f"person{i // 2}_bacteria_{i}.jpeg" if label else f"IM-{i // 2:04d}-{i:04d}.jpeg"
        cv2.imwrite(str(class_folder / name), image)
    return folder


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_train_model_writes_a_loadable_calibrated_artifact(tmp_path, capsys):
    data = write_folder(tmp_path / "train", 48, seed=3)
    site = write_folder(tmp_path / "site", 20, seed=4)

    call_command(
        "train_model",
        data=str(data),
        out=str(tmp_path / "model"),
        run_dir=str(tmp_path / "run"),
        alpha=0.35,
        weights="none",
        input_size=64,
        head_epochs=1,
        epochs=1,
        batch_size=16,
        calibration=str(site),
        tta_zooms="1.0,0.9",
        model_version="test-run",
    )

    output = capsys.readouterr().out
    assert "split by patient" in output and "phase 2" in output
    metadata = verified_metadata(tmp_path / "model" / "pneumonia.keras")
    split = metadata["training"]["split"]
    assert split["train"]["images"] + split["validation"]["images"] == 48
    assert metadata["site_calibration"]["n"] == 20 and metadata["threshold_rule"] == "sensitivity>=0.98"
    assert metadata["site_calibration"]["sensitivity"] >= 0.98
    unseen = metadata["site_calibration"]["cross_validated"]
    assert 0 <= unseen["threshold_rule"]["sensitivity"] <= 1 and unseen["threshold_rule"]["repeats"] == 20
    assert unseen["calibration"]["ece"] >= 0 and unseen["calibration"]["repeats"] == 20
    assert metadata["preprocessing"]["test_time_zooms"] == [1.0, 0.9]
    linked = list((tmp_path / "run" / "validation-split").rglob("*.jpeg"))
    assert len(linked) == split["validation"]["images"]
    predictor = Predictor.load(tmp_path / "model" / "pneumonia.keras")
    assert predictor.threshold == metadata["threshold"] and predictor.metadata["version"] == "test-run"


def test_split_only_links_the_same_validation_split_without_training(tmp_path):
    data = write_folder(tmp_path / "train", 48, seed=3)
    for run in ("first", "second"):
        call_command(
            "train_model", data=str(data), out=str(tmp_path / "unused"), run_dir=str(tmp_path / run), split_only=True
        )
    first = sorted(p.name for p in (tmp_path / "first" / "validation-split").rglob("*.jpeg"))
    second = sorted(p.name for p in (tmp_path / "second" / "validation-split").rglob("*.jpeg"))
    assert first and first == second
    assert not (tmp_path / "unused").exists()

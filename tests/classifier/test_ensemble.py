"""An ensemble as one network: its logit is the members' mean, Grad-CAM sums the members' parts,
and train_model --ensemble-of saves it as one verified artifact served by the same Predictor."""

import numpy as np
import pytest
from django.core.management import call_command

from classifier.artifact import verified_metadata
from classifier.ensemble import combine
from classifier.inference import Predictor, _compiled_gradcam
from classifier.model import OUTPUT_LAYER
from classifier.preprocess import preprocess_batch
from tests.classifier.test_train_command import write_folder
from tests.support.tiny_model import TINY_CONV_LAYER, TINY_INPUT_SIZE, build_tiny_model, generated_set


def logit(probabilities):
    p = np.clip(np.asarray(probabilities, dtype=np.float64).reshape(-1), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


@pytest.fixture(scope="module")
def members():
    import keras

    keras.utils.set_random_seed(11)
    first, second = build_tiny_model(), build_tiny_model()
    # Heads that disagree, so that a wrong combination shows.
    first.get_layer(OUTPUT_LAYER).set_weights([np.full((16, 1), 0.8, np.float32), np.array([-0.3], np.float32)])
    second.get_layer(OUTPUT_LAYER).set_weights([np.full((16, 1), -0.5, np.float32), np.array([0.2], np.float32)])
    return first, second


@pytest.fixture(scope="module")
def batch():
    images, _ = generated_set(6, seed=5)
    return preprocess_batch(images, TINY_INPUT_SIZE)


def test_the_ensemble_logit_is_the_mean_of_the_members_logits(members, batch):
    ensemble, gradcam_layers = combine(members, TINY_CONV_LAYER)

    expected = np.mean([logit(member(batch, training=False)) for member in members], axis=0)
    np.testing.assert_allclose(logit(ensemble(batch, training=False)), expected, atol=1e-4)
    assert gradcam_layers == [TINY_CONV_LAYER, f"m2_{TINY_CONV_LAYER}"]


def test_ensemble_gradcam_is_the_sum_of_the_members_parts(members, batch):
    first, second = members
    ensemble, gradcam_layers = combine(members, TINY_CONV_LAYER)
    both = np.asarray(_compiled_gradcam(ensemble, gradcam_layers)(batch))

    # With the second member's head silenced, only the first member's map remains (at half the
    # strength: its logit is divided by the number of members).
    head = ensemble.get_layer(OUTPUT_LAYER)
    kernel, bias = head.get_weights()
    head.set_weights([np.concatenate([kernel[:16], np.zeros_like(kernel[16:])]), bias])
    first_only = np.asarray(_compiled_gradcam(ensemble, gradcam_layers)(batch))
    alone = np.asarray(_compiled_gradcam(first, TINY_CONV_LAYER)(batch))
    np.testing.assert_allclose(first_only, alone / 2, rtol=1e-4, atol=1e-6)
    assert not np.allclose(both, first_only)


@pytest.fixture(scope="module")
def trained_member(tmp_path_factory):
    """One small model trained by train_model; -> (its training data folder, its .keras path)."""
    folder = tmp_path_factory.mktemp("member")
    data = write_folder(folder / "train", 48, seed=3)
    call_command(
        "train_model",
        data=str(data),
        out=str(folder / "model"),
        run_dir=str(folder / "run"),
        alpha=0.35,
        weights="none",
        input_size=64,
        head_epochs=1,
        epochs=1,
        batch_size=16,
        model_version="member",
    )
    return data, str(folder / "model" / "pneumonia.keras")


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_train_model_ensemble_of_saves_one_calibrated_artifact(trained_member, tmp_path):
    data, member = trained_member
    site = write_folder(tmp_path / "site", 20, seed=4)

    call_command(
        "train_model",
        data=str(data),
        out=str(tmp_path / "ensemble"),
        run_dir=str(tmp_path / "run"),
        input_size=64,
        calibration=str(site),
        ensemble_of=[member, member],
    )

    metadata = verified_metadata(tmp_path / "ensemble" / "pneumonia.keras")
    assert metadata["version"].startswith("mnv2-ensemble-")  # not named after one member's width
    assert [m["version"] for m in metadata["training"]["ensemble"]["members"]] == ["member", "member"]
    assert metadata["alpha"] == [0.35, 0.35] and len(metadata["gradcam_layer"]) == 2
    assert metadata["site_calibration"]["n"] == 20 and "probability_calibration" in metadata
    predictor = Predictor.load(tmp_path / "ensemble" / "pneumonia.keras")
    images, _ = generated_set(4, seed=8)
    inputs = predictor.preprocess(images)
    np.testing.assert_allclose(predictor.predict_inputs(inputs), predictor.predict_inputs_keras(inputs), atol=1e-4)
    assert predictor.gradcam(images[0]).shape == (64, 64)
    # Two copies of one model: the ensemble's network gives that model's own outputs.
    np.testing.assert_allclose(
        predictor.predict_inputs(inputs), Predictor.load(member).predict_inputs(inputs), atol=1e-4
    )


def test_members_trained_on_another_split_are_refused(trained_member, tmp_path):
    _, member = trained_member
    other = write_folder(tmp_path / "other", 40, seed=6)

    with pytest.raises(ValueError, match="another split"):
        call_command(
            "train_model",
            data=str(other),
            out=str(tmp_path / "ensemble"),
            run_dir=str(tmp_path / "run"),
            input_size=64,
            ensemble_of=[member, member],
        )
    assert not (tmp_path / "ensemble").exists()

"""The model artifact: `NAME.keras` + `NAME.tflite` + `NAME.json` side by side.

- `NAME.keras`: the trained Keras model (the reference; Grad-CAM runs on it).
- `NAME.tflite`: the same network converted to LiteRT, the fast inference path.
- `NAME.json`: metadata (version, backbone, input size, preprocessing, threshold,
  metrics, training data summary, sha256 of both model files, date, library versions).
- `NAME.features.npz` (optional): the training split's feature statistics for the
  intended-use image check (`classifier.intended_use`); its sha256 is in the metadata under
  `intended_use.image_check`. An artifact without it loads, without the image check.

Loading checks the files against the sha256 in the metadata and refuses a mismatch, so a
swapped or damaged file never serves predictions.
"""

import datetime
import hashlib
import json
from pathlib import Path

from classifier.preprocess import preprocessing_spec

FORMAT_VERSION = 1


class ArtifactError(Exception):
    """The artifact is missing, damaged, or does not match its metadata."""


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def metadata_path(keras_path):
    return Path(keras_path).with_suffix(".json")


def tflite_path(keras_path):
    return Path(keras_path).with_suffix(".tflite")


def convert_to_tflite(model, path):
    """Writes the LiteRT flatbuffer of a Keras model (float32, so outputs stay equal)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    Path(path).write_bytes(converter.convert())


def save_artifact(model, keras_path, metadata, test_time_zooms=(1.0,)):
    """Saves model + LiteRT conversion + metadata; -> the completed metadata dict.

    `metadata` must hold at least version, backbone, input_size, gradcam_layer and
    threshold; file hashes, date, format and library versions are filled in here.
    """
    import keras
    import tensorflow as tf

    required = {"version", "backbone", "input_size", "gradcam_layer", "threshold"}
    missing = required - metadata.keys()
    if missing:
        raise ValueError(f"artifact metadata lacks {sorted(missing)}")
    keras_path = Path(keras_path)
    keras_path.parent.mkdir(parents=True, exist_ok=True)
    # A fresh, uncompiled Model over the same layers: the file keeps the weights but not
    # the optimizer's state, which would triple its size and is useless for inference.
    inference_model = keras.Model(model.input, model.output, name=model.name)
    inference_model.save(keras_path)
    convert_to_tflite(inference_model, tflite_path(keras_path))
    metadata = {
        "format_version": FORMAT_VERSION,
        **metadata,
        "preprocessing": preprocessing_spec(metadata["input_size"], metadata["backbone"], test_time_zooms),
        "created_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
        "sha256": sha256_file(keras_path),
        "tflite_sha256": sha256_file(tflite_path(keras_path)),
    }
    write_metadata(keras_path, metadata)
    return metadata


def write_metadata(keras_path, metadata):
    metadata_path(keras_path).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")


def read_metadata(keras_path):
    path = metadata_path(keras_path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"no metadata file {path} next to the model") from None
    except json.JSONDecodeError as error:
        raise ArtifactError(f"metadata file {path} is not valid JSON: {error}") from None


def verified_metadata(keras_path):
    """The metadata, after checking both model files against their recorded sha256."""
    keras_path = Path(keras_path)
    metadata = read_metadata(keras_path)
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"{keras_path}: metadata format {metadata.get('format_version')!r}, this code reads format {FORMAT_VERSION}"
        )
    for path, key in ((keras_path, "sha256"), (tflite_path(keras_path), "tflite_sha256")):
        _check_file(path, metadata.get(key))
    image_check = (metadata.get("intended_use") or {}).get("image_check")
    if image_check:
        _check_file(features_path(keras_path), image_check.get("sha256"))
    recorded = metadata.get("preprocessing") or {}
    expected = preprocessing_spec(metadata["input_size"], metadata["backbone"], recorded.get("test_time_zooms", [1.0]))
    if recorded != expected:
        raise ArtifactError(
            f"{keras_path} was trained with preprocessing {metadata.get('preprocessing')}, this code does {expected}"
        )
    return metadata


def _check_file(path, expected_sha256):
    if not path.is_file():
        raise ArtifactError(f"model file {path} is missing")
    actual = sha256_file(path)
    if actual != expected_sha256:
        raise ArtifactError(
            f"sha256 mismatch for {path}: file has {actual}, metadata expects {expected_sha256}; refusing to load it"
        )


def features_path(keras_path):
    """The intended-use feature statistics beside the model (classifier.intended_use)."""
    return Path(keras_path).with_suffix(".features.npz")


def load_keras_model(keras_path):
    import keras

    return keras.models.load_model(keras_path, compile=False)

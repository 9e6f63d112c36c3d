"""Fitting the intended-use check into an artifact: the population it declares and the image
check's statistics (`NAME.features.npz`, its sha256 and threshold in the metadata).

`train_model` calls `fit_intended_use` on the model it has just saved; the `fit_intended_use`
command adds the same to an existing artifact, with the same patient-wise split.
"""

from pathlib import Path

import numpy as np

from classifier import artifact, data
from classifier.intended_use import (
    DEFAULT_FALSE_FLAG_RATE,
    FeatureStatistics,
    as_list,
    feature_layers,
    feature_model,
    threshold_for,
)
from classifier.preprocess import preprocess_image

BATCH_SIZE = 32
# The shared training data (Kermany et al., Guangzhou): chest X-rays of children aged one to five.
DEFAULT_POPULATION = {
    "min_age_years": 1,
    "max_age_years": 5,
    "source": "the training data's description: pediatric patients aged one to five years",
}


def pooled_features(keras_model, layers, images, log=None, what="images"):
    """Every image's plain view -> [per layer (n, channels)] pooled outputs."""
    import tensorflow as tf

    model = feature_model(keras_model, layers)
    size = int(model.input.shape[1])
    call = tf.function(lambda batch: model(batch, training=False), reduce_retracing=True)
    chunks = [[] for _ in layers]
    for start in range(0, len(images), BATCH_SIZE):
        chunk = images[start : start + BATCH_SIZE]
        batch = np.stack([preprocess_image(data.read_image(image.path), size) for image in chunk])
        for i, output in enumerate(as_list(call(batch))):
            chunks[i].append(np.asarray(output, dtype=np.float64))
        if log and ((start // BATCH_SIZE) % 20 == 19 or start + len(chunk) == len(images)):
            log(f"  features of {start + len(chunk)}/{len(images)} {what}")
    return [np.concatenate(parts) for parts in chunks]


def fit_intended_use(
    keras_path,
    train_images,
    validation_images,
    population=None,
    false_flag_rate=DEFAULT_FALSE_FLAG_RATE,
    log=None,
):
    """Fits the image check on `train_images`, sets its threshold on `validation_images`, and
    writes `NAME.features.npz` and the metadata (sha256, threshold, population) -> metadata."""
    keras_path = Path(keras_path)
    metadata = artifact.read_metadata(keras_path)
    keras_model = artifact.load_keras_model(keras_path)
    layers = feature_layers(keras_model, metadata["gradcam_layer"])
    train_features = pooled_features(keras_model, layers, train_images, log, "training images")
    statistics = FeatureStatistics.fit(train_features, layers)
    validation_features = pooled_features(keras_model, layers, validation_images, log, "validation images")
    validation_scores = statistics.scores(validation_features)
    threshold = threshold_for(validation_scores, false_flag_rate)
    path = artifact.features_path(keras_path)
    statistics.save(path)
    # The stored file is float32: the recorded figures come from it, as the worker will read it.
    stored_scores = FeatureStatistics.load(path).scores(validation_features)
    metadata["intended_use"] = {
        **(metadata.get("intended_use") or {}),
        "population": population or (metadata.get("intended_use") or {}).get("population") or DEFAULT_POPULATION,
        "image_check": {
            "file": path.name,
            "sha256": artifact.sha256_file(path),
            "method": "sum over layers of scaled squared Mahalanobis distances of pooled outputs "
            "(standardized, Ledoit-Wolf shrunk covariance)",
            "layers": layers,
            "threshold": threshold,
            "false_flag_rate": false_flag_rate,
            "validation_flagged": float(np.mean(stored_scores > threshold)),
            "fitted_on": {"train": len(train_images), "validation": len(validation_images)},
        },
    }
    artifact.write_metadata(keras_path, metadata)
    if log:
        log(
            f"intended use: image threshold {threshold:.3f} flags "
            f"{metadata['intended_use']['image_check']['validation_flagged']:.1%} of validation; wrote {path.name}"
        )
    return metadata


def split_for(metadata, data_dir):
    """The artifact's own patient-wise train/validation split of `data_dir` (from its training config)."""
    config = (metadata.get("training") or {}).get("config") or {}
    images = data.list_labeled_images(data_dir)
    return data.split_by_patient(images, config.get("validation_fraction", 0.15), config.get("seed", 1337))

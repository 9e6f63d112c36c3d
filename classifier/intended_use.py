"""Intended use: is this scan one the model was made for?

Each prediction is stored with an assessment `{"within": bool, "reasons": [...], "score": float | None}`.
The reasons:

- `age`: the patient's age on the study date lies outside the population the model's metadata
  declares (`population`: the bundled model's training data are children aged 1 to 5).
- `view`: the DICOM header says it is not a frontal chest radiograph (modality other than CR/DX,
  another body part, a lateral view).
- `image`: the image does not look like the training images, measured on the model's own
  features: the Mahalanobis distance of the globally pooled outputs of several backbone blocks
  from the training split's (standardized, Ledoit-Wolf shrunk covariance), each block's
  distance scaled by its spread on the training split, summed over the blocks. The statistics
  live beside the model as `NAME.features.npz`, hash-checked like the model files; the
  threshold in the metadata keeps a stated share of the validation split flagged.

An artifact without the statistics still loads; its scans get no image check (score None) and
the review page says so.
"""

from dataclasses import dataclass, field
from datetime import date

import numpy as np

REASON_TEXT = {
    "age": "the patient's age is outside the ages the model was trained on",
    "view": "the image is not a frontal chest radiograph (DICOM header)",
    "image": "the image does not look like the X-rays the model was trained on",
}
FRONTAL_MODALITIES = {"CR", "DX"}
LATERAL_VIEWS = {"LL", "RL", "LATERAL", "LAT"}
CHEST_BODY_PARTS = {"CHEST", "THORAX"}

# The MobileNetV2 blocks whose pooled outputs the image check measures: chosen on ood-dev (README table).
MOBILENET_V2_FEATURE_LAYERS = ("block_9_add", "block_12_add", "block_15_add", "block_16_project_BN")
DEFAULT_FALSE_FLAG_RATE = 0.02  # the share of the validation split the image check may flag


@dataclass
class Assessment:
    reasons: list = field(default_factory=list)
    score: float | None = None

    @property
    def within(self):
        return not self.reasons

    def as_json(self):
        return {"within": self.within, "reasons": list(self.reasons), "score": self.score}


def describe(reasons):
    """Reason codes -> one sentence for a person ("the patient's age ...; the image ...")."""
    return "; ".join(REASON_TEXT.get(code, code) for code in reasons)


def age_in_years(birth_date: date, on_date: date) -> int:
    return on_date.year - birth_date.year - ((on_date.month, on_date.day) < (birth_date.month, birth_date.day))


def outside_population(population, birth_date, study_date) -> bool:
    """True when the age in whole years on the study date is outside [min_age_years, max_age_years]."""
    if not population or birth_date is None or study_date is None:
        return False
    age = age_in_years(birth_date, study_date)
    low, high = population.get("min_age_years"), population.get("max_age_years")
    return (low is not None and age < low) or (high is not None and age > high)


def not_frontal_chest(dicom_study) -> bool:
    """What the DICOM header says; an empty header (PNG, JPEG) says nothing against the image."""
    modality = dicom_study.get("modality")
    body_part = dicom_study.get("body_part")
    view = dicom_study.get("view_position")
    return bool(
        (modality and modality not in FRONTAL_MODALITIES)
        or (body_part and body_part not in CHEST_BODY_PARTS)
        or (view and view in LATERAL_VIEWS)
    )


def assess(*, population, birth_date, study_date, dicom_study, image_score, image_threshold) -> Assessment:
    """The intended-use assessment of one scan (image_score/threshold None: no image check)."""
    reasons = []
    if outside_population(population, birth_date, study_date):
        reasons.append("age")
    if not_frontal_chest(dicom_study or {}):
        reasons.append("view")
    if image_score is not None and image_threshold is not None and image_score > image_threshold:
        reasons.append("image")
    return Assessment(reasons, None if image_score is None else float(image_score))


# --- the image check's statistics -------------------------------------------------------


def feature_layers(keras_model, gradcam_layer):
    """The layers whose pooled outputs are measured: the MobileNetV2 blocks the model has, else
    (another network, the tests' tiny one) its last convolutional layer."""
    names = {layer.name for layer in keras_model.layers}
    return [name for name in MOBILENET_V2_FEATURE_LAYERS if name in names] or as_list(gradcam_layer)[:1]


def feature_model(keras_model, layers):
    """A Keras model: input -> [globally averaged output of each layer] (see `as_list`)."""
    import keras

    outputs = [keras.ops.mean(keras_model.get_layer(name).output, axis=(1, 2)) for name in layers]
    return keras.Model(keras_model.input, outputs)


def as_list(outputs):
    """A model with one output layer returns a tensor, not a one-element list."""
    return list(outputs) if isinstance(outputs, list | tuple) else [outputs]


def ledoit_wolf(centered):
    """Ledoit-Wolf shrunk covariance of already centred rows -> (covariance, shrinkage)."""
    n, p = centered.shape
    empirical = centered.T @ centered / n
    mu = np.trace(empirical) / p
    delta = ((empirical - mu * np.eye(p)) ** 2).sum() / p
    squared = centered**2
    beta = min(((squared.T @ squared) / n - empirical**2).sum() / (p * n), delta)
    shrinkage = beta / delta if delta > 0 else 1.0
    return (1 - shrinkage) * empirical + shrinkage * mu * np.eye(p), float(shrinkage)


@dataclass
class FeatureStatistics:
    """Per layer: mean, standard deviation, precision of the standardized features, and the
    mean and spread of the training split's squared distances (to put layers on one scale)."""

    layers: list
    arrays: dict

    @classmethod
    def fit(cls, features_by_layer, layers):
        arrays = {}
        for name, features in zip(layers, features_by_layer):
            features = np.asarray(features, dtype=np.float64)
            mean, std = features.mean(axis=0), features.std(axis=0) + 1e-6
            standardized = (features - mean) / std
            covariance, _ = ledoit_wolf(standardized)
            precision = np.linalg.inv(covariance)
            distances = np.einsum("ij,jk,ik->i", standardized, precision, standardized)
            arrays[f"{name}/mean"] = mean
            arrays[f"{name}/std"] = std
            arrays[f"{name}/precision"] = precision
            arrays[f"{name}/scale"] = np.array([distances.mean(), distances.std() + 1e-9])
        return cls(list(layers), arrays)

    def scores(self, features_by_layer):
        """-> float64 array: the sum over layers of each layer's scaled squared Mahalanobis distance."""
        total = 0.0
        for name, features in zip(self.layers, features_by_layer):
            a = self.arrays
            standardized = (np.asarray(features, dtype=np.float64) - a[f"{name}/mean"]) / a[f"{name}/std"]
            distances = np.einsum("ij,jk,ik->i", standardized, a[f"{name}/precision"], standardized)
            center, spread = a[f"{name}/scale"]
            total = total + (distances - center) / spread
        return np.asarray(total, dtype=np.float64)

    def save(self, path):
        stored = {key: value.astype(np.float32) for key, value in self.arrays.items()}
        with open(path, "wb") as file:
            np.savez(file, layers=np.array(self.layers), **stored)

    @classmethod
    def load(cls, path):
        with np.load(path, allow_pickle=False) as stored:
            layers = [str(name) for name in stored["layers"]]
            arrays = {key: stored[key].astype(np.float64) for key in stored.files if key != "layers"}
        missing = [f"{name}/{part}" for name in layers for part in ("mean", "std", "precision", "scale")]
        missing = [key for key in missing if key not in arrays]
        if missing:
            raise ValueError(f"{path} lacks {missing}")
        return cls(layers, arrays)


def threshold_for(validation_scores, false_flag_rate=DEFAULT_FALSE_FLAG_RATE):
    """A threshold above which at most `false_flag_rate` of the validation split is flagged:
    halfway between the k-th and (k+1)-th highest scores, k = floor(rate * n), so that rounding
    in another process cannot tip a validation image across it."""
    ordered = np.sort(np.asarray(validation_scores, dtype=np.float64))
    allowed = int(np.floor(false_flag_rate * len(ordered) + 1e-9))
    if allowed == 0:
        return float(ordered[-1])
    return float((ordered[-allowed - 1] + ordered[-allowed]) / 2)

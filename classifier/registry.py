"""Django-side helpers around `ModelVersion`: register, calibrate, activate the bundled model,
and one loaded Predictor per model file per process.

Nothing here loads TensorFlow at import time; the first `get_predictor` call does.
"""

import copy
import threading
from pathlib import Path

from django.conf import settings
from django.db import transaction

from classifier import artifact
from classifier.models import ModelVersion
from classifier.threshold import DEFAULT_RULE, choose_threshold, cross_validated_rule

METRIC_SETS = ("validation", "site_calibration")

_predictors = {}
_predictors_lock = threading.Lock()


def _stored_path(path):
    """Relative to BASE_DIR when the file lies inside the project, so a checkout can move."""
    path = Path(path).resolve()
    base = Path(settings.BASE_DIR).resolve()
    return str(path.relative_to(base)) if path.is_relative_to(base) else str(path)


def _metrics_only(metrics):
    from classifier.metrics import METRIC_KEYS

    return {key: metrics[key] for key in METRIC_KEYS}


def register_model(path, activate=False):
    """Records the artifact at `path` (its metadata and sha256 checked) as a ModelVersion.

    Registering the same files again returns the existing version; a different file under
    an existing version name is refused.
    """
    metadata = artifact.verified_metadata(path)
    with transaction.atomic():
        existing = ModelVersion.objects.filter(version=metadata["version"]).first()
        if existing and existing.sha256 != metadata["sha256"]:
            raise artifact.ArtifactError(
                f"model version {metadata['version']} is already registered with other files (sha256 {existing.sha256})"
            )
        model_version = existing or ModelVersion.objects.create(
            version=metadata["version"],
            artifact_path=_stored_path(path),
            sha256=metadata["sha256"],
            threshold=metadata["threshold"],
            metadata=metadata,
            evaluation={name: _metrics_only(metadata[name]) for name in METRIC_SETS if name in metadata},
        )
        if activate:
            model_version.activate()
    return model_version


def ensure_bundled_model():
    """Registers settings.CLASSIFIER_MODEL_PATH, active only when no version is: an installation
    that runs an earlier version keeps it, and finds the new one on the Models page, to be run as
    the challenger first. -> the active version."""
    active = ModelVersion.active()
    register_model(settings.CLASSIFIER_MODEL_PATH, activate=active is None)
    return active or ModelVersion.active()


def calibrate_model(data_dir, rule=DEFAULT_RULE, base=None, site=None, log=None):
    """A site's labeled sample sets a new threshold for `base` (default: the active version).

    -> a new, inactive ModelVersion with the same files, the threshold chosen by `rule`,
    and the sample's metrics and size; an admin activates it.
    """
    from classifier.data import summarize
    from classifier.evaluate import score_folder

    base = base or ModelVersion.active()
    if base is None:
        raise ValueError("no model version is active; name the one to calibrate")
    images, labels, scores = score_folder(get_predictor(base), data_dir, log)
    site = site or Path(data_dir).resolve().name
    # The sample's own metrics at its own threshold are optimistic; this says what new patients get.
    carried_over = cross_validated_rule(labels, scores, [image.patient_id for image in images], rule)
    if log:
        log(
            f"the rule on unseen patients (5-fold by patient, {carried_over['repeats']} shuffles): sensitivity "
            f"{carried_over['sensitivity']:.3f}, specificity {carried_over['specificity']:.3f}, "
            f"accuracy {carried_over['accuracy']:.3f}"
        )
    return record_calibrated_version(
        base,
        labels,
        scores,
        rule,
        site,
        {"data_dir": str(data_dir), "data": summarize(images), "cross_validated": carried_over},
    )


def record_calibrated_version(base, labels, scores, rule, site, source):
    """The new, inactive ModelVersion of `base`'s files with the threshold `rule` picks on this
    labeled sample (`scores` on base's probability scale) and the sample's metrics; `source` says
    where the sample came from (a folder, or the doctors' reviews)."""
    from classifier.metrics import binary_metrics

    threshold = choose_threshold(labels, scores, rule)
    metrics = binary_metrics(labels, scores, threshold)
    calibration = {
        "base_version": base.version,
        "site": site,
        **source,
        "rule": rule,
        "threshold": threshold,
        "metrics": metrics,
    }
    root_version = base.version.split("-cal-")[0]
    return ModelVersion.objects.create(
        version=_unused_version(f"{root_version}-cal-{site}"),
        artifact_path=base.artifact_path,
        sha256=base.sha256,
        threshold=threshold,
        metadata={**base.metadata, "calibration": calibration},
        evaluation={**base.evaluation, "site_calibration": metrics},
        parent=base,
    )


def _unused_version(name):
    candidate, number = name, 1
    while ModelVersion.objects.filter(version=candidate).exists():
        number += 1
        candidate = f"{name}-{number}"
    return candidate


def get_predictor(model_version):
    """The Predictor for a ModelVersion, loaded once per process per model file.

    Versions sharing files (a calibrated version and its parent) share the loaded model
    and differ only in their threshold.
    """
    from classifier.inference import Predictor

    path = model_version.resolved_artifact_path()
    key = (str(path), model_version.sha256)
    with _predictors_lock:
        if key not in _predictors:
            predictor = Predictor.load(path)
            if predictor.metadata["sha256"] != model_version.sha256:
                raise artifact.ArtifactError(
                    f"{path} is not the file registered as {model_version.version}: sha256 "
                    f"{predictor.metadata['sha256']}, registered {model_version.sha256}"
                )
            _predictors[key] = predictor
        loaded = _predictors[key]
    # A version's own metadata says how its probabilities are calibrated: a version registered
    # before its artifact gained a calibration keeps the raw scale its threshold was chosen on.
    calibration = model_version.metadata.get("probability_calibration")
    if loaded.threshold == model_version.threshold and loaded.calibration == calibration:
        return loaded
    view = copy.copy(loaded)  # shares the interpreter, the Keras model and their lock
    view.threshold = float(model_version.threshold)
    view.calibration = calibration
    return view

"""Offline evaluation of a Predictor on a labeled folder (NORMAL/ and PNEUMONIA/).

The scores come from `Predictor.predict_proba`, the path the worker uses in production,
preprocessing included; the metrics from `classifier.metrics`, which the live dashboard
reuses.
"""

from pathlib import Path

import numpy as np

from classifier import data
from classifier.calibration import brier_score, expected_calibration_error, reliability_png
from classifier.explain import overlay_png
from classifier.metrics import binary_metrics, confusion_matrix_png, roc_curve_png

BATCH_SIZE = 32
OVERLAYS = 6  # Grad-CAM overlays written by evaluate_model --plots


def score_folder(predictor, data_dir, log=None, calibrated=True):
    """-> (images, labels, scores) for every image of a labeled folder."""
    return score_images(predictor, data.list_labeled_images(data_dir), log, calibrated)


def score_images(predictor, images, log=None, calibrated=True):
    """-> (images, labels, scores) for a list of `data.LabeledImage` (`calibrated=False`: the
    network's own probabilities, to fit a calibration on)."""
    scores = []
    for start in range(0, len(images), BATCH_SIZE):
        chunk = images[start : start + BATCH_SIZE]
        scores.append(predictor.predict_proba([data.read_image(image.path) for image in chunk], calibrated))
        if log:
            log(f"  scored {start + len(chunk)}/{len(images)} images")
    labels = np.array([image.label for image in images])
    return images, labels, np.concatenate(scores) if scores else np.zeros(0, dtype=np.float32)


def evaluate_folder(predictor, data_dir, threshold=None, plots_dir=None, log=None):
    """Metrics (classifier.metrics.METRIC_KEYS) at the predictor's threshold, or `threshold`.

    Also `ece` (10 equal-width bins) and `brier` of the probabilities (classifier.calibration).
    With `plots_dir`: the ROC curve, the confusion matrix, the reliability diagram, and Grad-CAM
    overlays of the scans the model got most wrong (`write_overlays`).
    """
    images, labels, scores = score_folder(predictor, data_dir, log)
    threshold = predictor.threshold if threshold is None else threshold
    metrics = {
        **binary_metrics(labels, scores, threshold),
        "ece": expected_calibration_error(labels, scores),
        "brier": brier_score(labels, scores),
    }
    if plots_dir:
        write_plots(labels, scores, metrics, plots_dir, title=Path(data_dir).name)
        write_overlays(predictor, images, labels, scores, plots_dir)
    return metrics


def write_plots(labels, scores, metrics, plots_dir, title):
    plots_dir = Path(plots_dir)
    plots_dir.mkdir(parents=True, exist_ok=True)
    (plots_dir / "roc_curve.png").write_bytes(
        roc_curve_png(labels, scores, metrics["threshold"], title=f"ROC curve: {title}")
    )
    (plots_dir / "confusion_matrix.png").write_bytes(
        confusion_matrix_png(metrics["confusion_matrix"], title=f"Confusion matrix: {title}")
    )
    (plots_dir / "reliability.png").write_bytes(reliability_png(labels, scores, title=f"Reliability: {title}"))


def write_overlays(predictor, images, labels, scores, plots_dir, count=OVERLAYS):
    """Grad-CAM overlays of the `count` scans farthest from their label (worst mistakes
    first), as PLOTS_DIR/gradcam/<score>_<CLASS>_<file>.png, to see what the model looked at.
    """
    folder = Path(plots_dir) / "gradcam"
    folder.mkdir(parents=True, exist_ok=True)
    for i in np.argsort(-np.abs(labels - scores), kind="stable")[:count]:
        image = images[i]
        pixels = data.read_image(image.path)
        name = f"{scores[i]:.3f}_{data.CLASS_NAMES[image.label]}_{image.path.stem}.png"
        (folder / name).write_bytes(overlay_png(pixels, predictor.gradcam(pixels)))


def format_table(metrics):
    """A two-column text table of the metrics, for the console."""

    def show(value):
        if value is None:
            return "n/a"
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    (tn, fp), (fn, tp) = metrics["confusion_matrix"]
    keys = ("n", "auc", "accuracy", "sensitivity", "specificity", "precision", "f1", "threshold", "ece", "brier")
    rows = [(key, show(metrics[key])) for key in keys if key in metrics]
    rows.append(("confusion_matrix", f"tn={tn} fp={fp} fn={fn} tp={tp}"))
    width = max(len(key) for key, _ in rows)
    return "\n".join(f"{key:<{width}}  {value}" for key, value in rows)

"""Offline evaluation of a Predictor on a labeled folder (NORMAL/ and PNEUMONIA/).

The scores come from `Predictor.predict_proba`, the path the worker uses in production,
preprocessing included; the metrics from `classifier.metrics`, which the live dashboard
reuses.
"""

from pathlib import Path

import numpy as np

from classifier import data
from classifier.metrics import binary_metrics, confusion_matrix_png, roc_curve_png

BATCH_SIZE = 32


def score_folder(predictor, data_dir, log=None):
    """-> (images, labels, scores) for every image of a labeled folder."""
    images = data.list_labeled_images(data_dir)
    scores = []
    for start in range(0, len(images), BATCH_SIZE):
        chunk = images[start:start + BATCH_SIZE]
        scores.append(predictor.predict_proba([data.read_image(image.path) for image in chunk]))
        if log:
            log(f"  scored {start + len(chunk)}/{len(images)} images")
    labels = np.array([image.label for image in images])
    return images, labels, np.concatenate(scores)


def evaluate_folder(predictor, data_dir, threshold=None, plots_dir=None, log=None):
    """Metrics (classifier.metrics.METRIC_KEYS) at the predictor's threshold, or `threshold`."""
    _, labels, scores = score_folder(predictor, data_dir, log)
    threshold = predictor.threshold if threshold is None else threshold
    metrics = binary_metrics(labels, scores, threshold)
    if plots_dir:
        write_plots(labels, scores, metrics, plots_dir, title=Path(data_dir).name)
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


def format_table(metrics):
    """A two-column text table of the metrics, for the console."""
    def show(value):
        if value is None:
            return "n/a"
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    (tn, fp), (fn, tp) = metrics["confusion_matrix"]
    rows = [(key, show(metrics[key])) for key in
            ("n", "auc", "accuracy", "sensitivity", "specificity", "precision", "f1", "threshold")]
    rows.append(("confusion_matrix", f"tn={tn} fp={fp} fn={fn} tp={tp}"))
    width = max(len(key) for key, _ in rows)
    return "\n".join(f"{key:<{width}}  {value}" for key, value in rows)

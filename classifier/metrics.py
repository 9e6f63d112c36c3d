"""Binary classification metrics, shared by offline evaluation and the live dashboard.

Pure numpy (matplotlib only inside the PNG renderers), so the web process can import it
without TensorFlow. Every function copes with no samples or a single class: a metric
that is undefined for the data given is None, never a made-up number.
"""

import io

import numpy as np

METRIC_KEYS = (
    "n",
    "auc",
    "accuracy",
    "sensitivity",
    "specificity",
    "precision",
    "f1",
    "threshold",
    "confusion_matrix",
)


def labels_and_scores(y_true, y_score):
    """Validated flat arrays: int labels in {0, 1} and float scores of the same length."""
    y_true = np.asarray(y_true, dtype=int).reshape(-1)
    y_score = np.asarray(y_score, dtype=float).reshape(-1)
    if y_true.shape != y_score.shape:
        raise ValueError(f"{y_true.size} labels but {y_score.size} scores")
    if not np.isin(y_true, (0, 1)).all():
        raise ValueError("labels must be 0 (normal) or 1 (pneumonia)")
    return y_true, y_score


def _ratio(numerator, denominator):
    return float(numerator) / float(denominator) if denominator else None


def confusion_matrix(y_true, y_score, threshold):
    """[[tn, fp], [fn, tp]]; a score >= threshold predicts pneumonia (label 1)."""
    y_true, y_score = labels_and_scores(y_true, y_score)
    predicted = y_score >= threshold
    positive = y_true == 1
    return [
        [int(np.sum(~positive & ~predicted)), int(np.sum(~positive & predicted))],
        [int(np.sum(positive & ~predicted)), int(np.sum(positive & predicted))],
    ]


def roc_auc(y_true, y_score):
    """Area under the ROC curve (ties count one half); None without both classes."""
    y_true, y_score = labels_and_scores(y_true, y_score)
    n_positive = int(y_true.sum())
    n_negative = y_true.size - n_positive
    if n_positive == 0 or n_negative == 0:
        return None
    # Mann-Whitney U from average ranks, which handles tied scores exactly.
    order = np.argsort(y_score, kind="mergesort")
    sorted_scores = y_score[order]
    ranks = np.empty(y_score.size, dtype=float)
    _, first, tie, counts = np.unique(sorted_scores, return_index=True, return_inverse=True, return_counts=True)
    ranks[order] = (first + (counts + 1) / 2.0)[tie]  # each tied score at its group's average rank
    u = ranks[y_true == 1].sum() - n_positive * (n_positive + 1) / 2.0
    return float(u / (n_positive * n_negative))


def counts_at_or_above(scores, thresholds):
    """How many of `scores` are at or above each threshold: binary search in the sorted scores,
    O(n log n) rather than one pass per threshold."""
    return scores.size - np.searchsorted(np.sort(scores), thresholds, side="left")


def roc_curve(y_true, y_score):
    """-> (false_positive_rates, true_positive_rates, thresholds), from (0, 0) to (1, 1).

    thresholds[i] is the lowest score predicted positive at point i (inf for (0, 0)).
    Empty arrays when either class is missing.
    """
    y_true, y_score = labels_and_scores(y_true, y_score)
    n_positive = int(y_true.sum())
    n_negative = y_true.size - n_positive
    if n_positive == 0 or n_negative == 0:
        return np.array([]), np.array([]), np.array([])
    thresholds = np.unique(y_score)[::-1]
    tpr = counts_at_or_above(y_score[y_true == 1], thresholds) / n_positive
    fpr = counts_at_or_above(y_score[y_true == 0], thresholds) / n_negative
    return (
        np.concatenate([[0.0], fpr]),
        np.concatenate([[0.0], tpr]),
        np.concatenate([[np.inf], thresholds]),
    )


def binary_metrics(y_true, y_score, threshold):
    """The evaluation dict (exactly METRIC_KEYS) at the given decision threshold."""
    y_true, y_score = labels_and_scores(y_true, y_score)
    (tn, fp), (fn, tp) = confusion_matrix(y_true, y_score, threshold)
    metrics = {**metrics_from_counts(tn, fp, fn, tp), "auc": roc_auc(y_true, y_score), "threshold": float(threshold)}
    return {key: metrics[key] for key in METRIC_KEYS}


def metrics_from_counts(tn, fp, fn, tp):
    """n, accuracy, sensitivity, specificity, precision, f1 and confusion_matrix from the four counts
    (the live dashboard counts them in the database)."""
    n = tn + fp + fn + tp
    return {
        "n": int(n),
        "accuracy": _ratio(tp + tn, n),
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "precision": _ratio(tp, tp + fp),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "confusion_matrix": [[int(tn), int(fp)], [int(fn), int(tp)]],
    }


def group_folds(groups, folds=5, seed=0):
    """A fold number per sample, whole groups (patients) to a fold, the groups shuffled by `seed`."""
    groups = np.asarray(groups)
    unique = np.unique(groups)
    np.random.default_rng(seed).shuffle(unique)
    fold_of = {group: i % folds for i, group in enumerate(unique)}
    return np.array([fold_of[group] for group in groups])


def _figure_png(figure):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def roc_curve_png(y_true, y_score, threshold=None, title="ROC curve"):
    """The ROC curve as PNG bytes, with the operating point at `threshold` if given."""
    from matplotlib.figure import Figure  # Agg canvas, no pyplot global state

    fpr, tpr, _ = roc_curve(y_true, y_score)
    auc = roc_auc(y_true, y_score)
    figure = Figure(figsize=(4.5, 4.5))
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=1)
    if fpr.size:
        axes.plot(fpr, tpr, color="tab:blue", label=f"AUC = {auc:.3f}")
        if threshold is not None:
            point = binary_metrics(y_true, y_score, threshold)
            axes.plot(
                1 - point["specificity"],
                point["sensitivity"],
                "o",
                color="tab:red",
                label=f"threshold {threshold:.3f}",
            )
        axes.legend(loc="lower right")
    else:
        axes.text(0.5, 0.5, "needs both classes", ha="center", va="center")
    axes.set(
        xlim=(0, 1),
        ylim=(0, 1.01),
        title=title,
        xlabel="1 - specificity (false positive rate)",
        ylabel="sensitivity (true positive rate)",
    )
    return _figure_png(figure)


def confusion_matrix_png(matrix, title="Confusion matrix"):
    """A [[tn, fp], [fn, tp]] matrix as PNG bytes."""
    from matplotlib.figure import Figure

    counts = np.asarray(matrix, dtype=int)
    figure = Figure(figsize=(4, 3.6))
    axes = figure.add_subplot()
    axes.imshow(counts, cmap="Blues", vmin=0, vmax=max(int(counts.max()), 1))
    labels = ["normal", "pneumonia"]
    axes.set_xticks([0, 1], labels)
    axes.set_yticks([0, 1], labels)
    axes.set(xlabel="predicted", ylabel="actual", title=title)
    for (row, column), count in np.ndenumerate(counts):
        dark = count > counts.max() / 2
        axes.text(column, row, str(count), ha="center", va="center", color="white" if dark else "black", fontsize=14)
    return _figure_png(figure)

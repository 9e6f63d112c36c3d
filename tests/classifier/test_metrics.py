"""Metrics against hand-computed values; empty and one-class inputs (the live dashboard's case)."""

import numpy as np
import pytest

from classifier.metrics import METRIC_KEYS, binary_metrics, confusion_matrix_png, roc_auc, roc_curve, roc_curve_png

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_fixed_confusion_matrix_gives_hand_computed_metrics():
    # tn=3 fp=1 fn=2 tp=4 at threshold 0.5
    y_true = [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
    y_score = [0.1, 0.2, 0.3, 0.7, 0.4, 0.45, 0.6, 0.8, 0.9, 0.95]
    metrics = binary_metrics(y_true, y_score, 0.5)
    assert list(metrics) == list(METRIC_KEYS)
    assert metrics["confusion_matrix"] == [[3, 1], [2, 4]]
    assert metrics["n"] == 10
    assert metrics["accuracy"] == pytest.approx(7 / 10)
    assert metrics["sensitivity"] == pytest.approx(4 / 6)
    assert metrics["specificity"] == pytest.approx(3 / 4)
    assert metrics["precision"] == pytest.approx(4 / 5)
    assert metrics["f1"] == pytest.approx(2 * 4 / (2 * 4 + 1 + 2))
    assert metrics["threshold"] == 0.5
    # AUC by counting pairs: of 24 (pos, neg) pairs, the 0.7 negative beats 0.4, 0.45 and 0.6.
    assert metrics["auc"] == pytest.approx(21 / 24)


def test_score_equal_to_threshold_counts_as_pneumonia():
    assert binary_metrics([0, 1], [0.5, 0.5], 0.5)["confusion_matrix"] == [[0, 1], [0, 1]]


def test_tied_scores_count_half_in_auc():
    assert roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9]) == pytest.approx((1 + 1 + 0.5 + 1) / 4)


def test_empty_input_gives_none_not_numbers():
    metrics = binary_metrics([], [], 0.5)
    assert metrics["n"] == 0
    assert metrics["confusion_matrix"] == [[0, 0], [0, 0]]
    assert all(metrics[key] is None for key in ("auc", "accuracy", "sensitivity", "specificity", "precision", "f1"))


def test_one_class_only_keeps_what_is_defined():
    metrics = binary_metrics([1, 1, 1], [0.9, 0.2, 0.7], 0.5)
    assert metrics["auc"] is None and metrics["specificity"] is None
    assert metrics["sensitivity"] == pytest.approx(2 / 3)
    assert metrics["accuracy"] == pytest.approx(2 / 3)
    metrics = binary_metrics([0, 0], [0.1, 0.2], 0.5)
    assert metrics["precision"] is None and metrics["sensitivity"] is None and metrics["specificity"] == 1.0


def test_roc_curve_runs_from_origin_to_corner_and_matches_auc():
    y_true = np.array([0, 0, 1, 1, 0, 1])
    y_score = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
    fpr, tpr, thresholds = roc_curve(y_true, y_score)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc(y_true, y_score))
    assert roc_curve([1, 1], [0.2, 0.3])[0].size == 0


def test_mismatched_or_invalid_labels_are_refused():
    with pytest.raises(ValueError):
        binary_metrics([0, 1], [0.5], 0.5)
    with pytest.raises(ValueError):
        binary_metrics([0, 2], [0.5, 0.5], 0.5)


def test_plots_are_png_even_without_data():
    assert roc_curve_png([0, 1, 1], [0.2, 0.6, 0.9], threshold=0.5).startswith(PNG_SIGNATURE)
    assert roc_curve_png([], []).startswith(PNG_SIGNATURE)
    assert confusion_matrix_png([[3, 1], [2, 4]]).startswith(PNG_SIGNATURE)
    assert confusion_matrix_png([[0, 0], [0, 0]]).startswith(PNG_SIGNATURE)

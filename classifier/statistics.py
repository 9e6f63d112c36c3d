"""How sure a measured figure is: confidence intervals and paired tests.

Pure numpy and the standard library, so that the dashboard, the metrics API and the model
comparison share one implementation. A figure that the data cannot support (no samples, a
single class) is None, never a made-up number.
"""

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from classifier.metrics import labels_and_scores


def _z(confidence):
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def _two_sided_normal_p(z):
    return math.erfc(abs(z) / math.sqrt(2.0))


def wilson_interval(successes, n, confidence=0.95):
    """Wilson score interval for a proportion: honest near 0 and 1 and for small n; None when n == 0."""
    if n == 0:
        return None
    if not 0 <= successes <= n:
        raise ValueError(f"{successes} successes out of {n}")
    z = _z(confidence)
    p = successes / n
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2.0 * n)) / denominator
    half_width = z / denominator * math.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n))
    return max(0.0, centre - half_width), min(1.0, centre + half_width)


@dataclass(frozen=True)
class AucEstimate:
    auc: float
    variance: float
    low: float
    high: float


@dataclass(frozen=True)
class PairedAuc:
    auc_a: float
    auc_b: float
    p_value: float


def _midranks(values):
    """Ranks starting at 1, ties sharing their average rank."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    ranks = np.empty(values.size, dtype=float)
    _, first, counts = np.unique(sorted_values, return_index=True, return_counts=True)
    for start, count in zip(first, counts, strict=True):
        ranks[order[start : start + count]] = start + (count + 1) / 2.0
    return ranks


def _structural_components(y_true, y_score):
    """DeLong's per-case components: V10 for each positive, V01 for each negative (Sun & Xu's midrank form)."""
    positives = y_score[y_true == 1]
    negatives = y_score[y_true == 0]
    m, n = positives.size, negatives.size
    combined = _midranks(np.concatenate([positives, negatives]))
    v10 = (combined[:m] - _midranks(positives)) / n
    v01 = 1.0 - (combined[m:] - _midranks(negatives)) / m
    return v10, v01


def _enough_of_each_class(y_true):
    # DeLong's variance needs at least two cases of each class.
    positives = int(y_true.sum())
    return positives >= 2 and y_true.size - positives >= 2


def delong_auc(y_true, y_score, confidence=0.95):
    """The ROC AUC with DeLong's variance and a normal interval clipped to [0, 1]; None with < 2 of a class."""
    y_true, y_score = labels_and_scores(y_true, y_score)
    if not _enough_of_each_class(y_true):
        return None
    v10, v01 = _structural_components(y_true, y_score)
    auc = float(v10.mean())
    variance = float(v10.var(ddof=1) / v10.size + v01.var(ddof=1) / v01.size)
    half_width = _z(confidence) * math.sqrt(variance)
    return AucEstimate(auc, variance, max(0.0, auc - half_width), min(1.0, auc + half_width))


def delong_paired(y_true, score_a, score_b):
    """DeLong's test that two models' AUCs on the same cases are equal; None with < 2 of a class."""
    y_true, score_a = labels_and_scores(y_true, score_a)
    _, score_b = labels_and_scores(y_true, score_b)
    if not _enough_of_each_class(y_true):
        return None
    v10_a, v01_a = _structural_components(y_true, score_a)
    v10_b, v01_b = _structural_components(y_true, score_b)
    auc_a, auc_b = float(v10_a.mean()), float(v10_b.mean())
    s10 = np.cov(np.vstack([v10_a, v10_b]))
    s01 = np.cov(np.vstack([v01_a, v01_b]))
    contrast = np.array([1.0, -1.0])
    variance = float(contrast @ s10 @ contrast / v10_a.size + contrast @ s01 @ contrast / v01_a.size)
    if variance <= 0.0:
        # Both models order every pair alike: no evidence of a difference.
        return PairedAuc(auc_a, auc_b, 1.0)
    return PairedAuc(auc_a, auc_b, _two_sided_normal_p((auc_a - auc_b) / math.sqrt(variance)))


def mcnemar_exact_p(only_a_correct, only_b_correct):
    """McNemar's exact two-sided p for paired accuracy, from the discordant pairs only (binomial, p = 1/2)."""
    if only_a_correct < 0 or only_b_correct < 0:
        raise ValueError("counts of discordant pairs cannot be negative")
    discordant = only_a_correct + only_b_correct
    if discordant == 0:
        return 1.0
    tail = sum(math.comb(discordant, k) for k in range(min(only_a_correct, only_b_correct) + 1))
    return min(1.0, 2.0 * tail / 2**discordant)

"""Intervals and paired tests against values computed by hand or from their definitions."""

import itertools

import numpy as np
import pytest

from classifier.statistics import delong_auc, delong_paired, mcnemar_exact_p, wilson_interval


def test_wilson_interval_of_8_out_of_10():
    # By hand: centre (0.8 + 1.96²/20) / (1 + 1.96²/10) = 0.7167, half width 0.2266.
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4)
    assert high == pytest.approx(0.9433, abs=1e-4)


def test_wilson_interval_stays_inside_0_and_1_and_is_none_without_cases():
    assert wilson_interval(0, 5)[0] == 0.0
    assert wilson_interval(5, 5)[1] == 1.0
    assert wilson_interval(0, 0) is None
    with pytest.raises(ValueError):
        wilson_interval(6, 5)


def test_wider_confidence_gives_a_wider_interval():
    narrow = wilson_interval(30, 50, confidence=0.90)
    wide = wilson_interval(30, 50, confidence=0.99)
    assert wide[0] < narrow[0] and wide[1] > narrow[1]


def test_mcnemar_exact_p_by_hand():
    # 1 vs 5 discordant pairs: 2 * (C(6,0) + C(6,1)) / 2^6 = 14 / 64.
    assert mcnemar_exact_p(1, 5) == pytest.approx(14 / 64)
    assert mcnemar_exact_p(5, 1) == pytest.approx(14 / 64)
    assert mcnemar_exact_p(3, 3) == 1.0
    assert mcnemar_exact_p(0, 0) == 1.0
    assert mcnemar_exact_p(0, 10) == pytest.approx(2 / 1024)


def _psi(positive, negative):
    return 1.0 if positive > negative else 0.5 if positive == negative else 0.0


def _delong_by_definition(y_true, score_a, score_b=None):
    """DeLong et al. (1988) straight from the pairwise kernel: slow and obvious."""
    positives = [i for i, y in enumerate(y_true) if y == 1]
    negatives = [i for i, y in enumerate(y_true) if y == 0]
    models = [score_a] if score_b is None else [score_a, score_b]
    v10 = np.array([[np.mean([_psi(s[i], s[j]) for j in negatives]) for i in positives] for s in models])
    v01 = np.array([[np.mean([_psi(s[i], s[j]) for i in positives]) for j in negatives] for s in models])
    aucs = v10.mean(axis=1)
    s10 = np.atleast_2d(np.cov(v10))
    s01 = np.atleast_2d(np.cov(v01))
    return aucs, s10 / len(positives) + s01 / len(negatives)


def test_delong_auc_on_a_small_case_with_ties():
    y_true = [1, 1, 1, 0, 0, 0, 0]
    scores = [0.9, 0.6, 0.4, 0.6, 0.3, 0.2, 0.5]
    # By hand: of the 12 pairs, positives win 9, tie 1 (0.6 vs 0.6), lose 2 (0.4 vs 0.6, 0.5) -> 9.5 / 12.
    estimate = delong_auc(y_true, scores)
    assert estimate.auc == pytest.approx(9.5 / 12)
    aucs, covariance = _delong_by_definition(y_true, scores)
    assert estimate.variance == pytest.approx(covariance[0, 0])
    half_width = 1.959964 * np.sqrt(covariance[0, 0])
    assert estimate.low == pytest.approx(max(0.0, aucs[0] - half_width), abs=1e-6)
    assert estimate.high == pytest.approx(min(1.0, aucs[0] + half_width), abs=1e-6)


def test_delong_paired_matches_its_definition_on_random_data():
    rng = np.random.default_rng(7)
    y_true = rng.integers(0, 2, 60)
    score_a = np.round(rng.random(60) + 1.0 * y_true, 1)  # rounded: ties included
    score_b = np.round(rng.random(60), 1)
    paired = delong_paired(y_true, score_a, score_b)
    aucs, covariance = _delong_by_definition(y_true, score_a, score_b)
    assert (paired.auc_a, paired.auc_b) == pytest.approx(tuple(aucs))
    z = (aucs[0] - aucs[1]) / np.sqrt(covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1])
    from statistics import NormalDist

    assert paired.p_value == pytest.approx(2 * (1 - NormalDist().cdf(abs(z))))
    assert paired.p_value < 0.05  # a strong model against one with no signal, on 60 cases


def test_identical_models_give_p_one_and_too_few_cases_give_none():
    y_true = [1, 0, 1, 0]
    scores = [0.9, 0.1, 0.8, 0.3]
    assert delong_paired(y_true, scores, scores).p_value == 1.0
    assert delong_auc([1, 0, 0], [0.9, 0.2, 0.1]) is None
    assert delong_paired([1, 1, 1], [0.9, 0.2, 0.1], [0.1, 0.2, 0.3]) is None


@pytest.mark.parametrize("n", [3, 4])
def test_auc_equals_the_share_of_correctly_ordered_pairs(n):
    y_true = [1] * n + [0] * n
    for scores in itertools.islice(itertools.permutations(range(2 * n)), 20):
        pairs = [_psi(scores[i], scores[j]) for i in range(n) for j in range(n, 2 * n)]
        assert delong_auc(y_true, scores).auc == pytest.approx(np.mean(pairs))

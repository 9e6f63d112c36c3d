"""The documented threshold rules."""

import pytest

from classifier.metrics import binary_metrics
from classifier.threshold import choose_threshold, parse_rule

# 10 pneumonia and 6 normal scores; the lowest pneumonia score is an outlier.
Y_TRUE = [1] * 10 + [0] * 6
Y_SCORE = [0.95, 0.9, 0.88, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.1] + [0.62, 0.5, 0.4, 0.3, 0.2, 0.05]


def test_sensitivity_rule_takes_the_most_specific_threshold_reaching_the_target():
    # Sensitivity >= 0.9 allows missing the 0.1 outlier: call pneumonia from 0.6 up, which
    # lets one normal (0.62) through; the threshold sits halfway down to the next score (0.5).
    threshold = choose_threshold(Y_TRUE, Y_SCORE, "sensitivity>=0.9")
    assert threshold == pytest.approx(0.55)
    metrics = binary_metrics(Y_TRUE, Y_SCORE, threshold)
    assert metrics["sensitivity"] == pytest.approx(0.9) and metrics["specificity"] == pytest.approx(5 / 6)


def test_full_sensitivity_goes_down_to_the_outlier():
    threshold = choose_threshold(Y_TRUE, Y_SCORE, "sensitivity>=1.0")
    assert threshold == pytest.approx((0.1 + 0.05) / 2)
    assert binary_metrics(Y_TRUE, Y_SCORE, threshold)["sensitivity"] == 1.0


def test_youden_rule_maximises_sensitivity_plus_specificity():
    threshold = choose_threshold(Y_TRUE, Y_SCORE, "youden")
    metrics = binary_metrics(Y_TRUE, Y_SCORE, threshold)
    assert metrics["sensitivity"] + metrics["specificity"] == pytest.approx(0.8 + 1.0)
    assert 0.62 < threshold < 0.65


def test_rules_are_parsed_strictly():
    assert parse_rule("sensitivity >= 0.95") == ("sensitivity", 0.95)
    for bad in ("sensitivity>=1.5", "specificity>=0.9", "best", ""):
        with pytest.raises(ValueError):
            parse_rule(bad)


def test_a_threshold_needs_both_classes():
    with pytest.raises(ValueError, match="both"):
        choose_threshold([1, 1], [0.3, 0.4])


def test_cross_validated_rule_misses_the_outlier_whenever_it_is_held_out():
    # One patient per scan, four per fold. The other folds always hold at least six pneumonia
    # scans, so sensitivity >= 0.8 lets their rule leave the outlier (0.1) out and put the
    # threshold between the normal scans (<= 0.5) and the others (>= 0.6): the held-out outlier
    # is missed in every shuffle, every other scan is decided rightly.
    from classifier.threshold import cross_validated_rule

    y_true = [1] * 10 + [0] * 10
    y_score = [0.95, 0.9, 0.88, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.1] + [
        0.5,
        0.45,
        0.4,
        0.35,
        0.3,
        0.25,
        0.2,
        0.15,
        0.05,
        0.02,
    ]
    carried = cross_validated_rule(y_true, y_score, groups=range(20), rule="sensitivity>=0.8", folds=5, repeats=4)

    assert carried["sensitivity"] == pytest.approx(0.9)
    assert carried["specificity"] == pytest.approx(1.0)
    assert carried["accuracy"] == pytest.approx(19 / 20)
    assert (carried["folds"], carried["repeats"]) == (5, 4)

"""Decision-threshold rules, applied to a labeled sample's scores.

A rule is written as text so it can be stored with the model and given on the command
line:

- `sensitivity>=0.98` (the default): the highest specificity whose sensitivity is at
  least 0.98; among equally specific choices, the most sensitive one. Missing a
  pneumonia costs more than a second look at a normal film. The product promises 0.97
  on new patients; a threshold chosen to give exactly 0.97 on a site's sample (about a
  hundred pneumonia cases) gives less on new patients about half the time (5-fold by
  patient on the site-calibration sample: 0.969 for the bundled model), so the rule asks
  the sample for one point more (0.977 there). `cross_validated_rule` measures this.
- `youden`: the highest sensitivity + specificity - 1.

The threshold is put halfway between the lowest score called pneumonia and the highest
score called normal, so that a new scan is not decided by the exact score of one
calibration image.
"""

import re

import numpy as np

from classifier.metrics import counts_at_or_above, group_folds, labels_and_scores

DEFAULT_RULE = "sensitivity>=0.98"
_SENSITIVITY_RULE = re.compile(r"^sensitivity>=(0(?:\.\d+)?|1(?:\.0+)?)$")


def parse_rule(rule):
    """-> ("sensitivity", target) or ("youden", None); ValueError for anything else."""
    rule = rule.replace(" ", "")
    if rule == "youden":
        return "youden", None
    match = _SENSITIVITY_RULE.match(rule)
    if match:
        return "sensitivity", float(match.group(1))
    raise ValueError(f"unknown threshold rule {rule!r}: use 'sensitivity>=0.95' or 'youden'")


def choose_threshold(y_true, y_score, rule=DEFAULT_RULE):
    """The threshold that `rule` picks on this labeled sample (needs both classes)."""
    kind, target = parse_rule(rule)
    y_true, y_score = labels_and_scores(y_true, y_score)
    positives, negatives = y_score[y_true == 1], y_score[y_true == 0]
    if positives.size == 0 or negatives.size == 0:
        raise ValueError("choosing a threshold needs both normal and pneumonia images")
    candidates = np.unique(y_score)  # predict pneumonia when score >= candidate
    sensitivity = counts_at_or_above(positives, candidates) / positives.size
    specificity = (negatives.size - counts_at_or_above(negatives, candidates)) / negatives.size
    if kind == "youden":
        objective = sensitivity + specificity
    else:
        # A score that only admissible candidates can reach: specificity first, then
        # sensitivity as the tie-break (1e-6 is below one image's share of specificity).
        objective = np.where(sensitivity >= target - 1e-12, specificity + 1e-6 * sensitivity, -1)
    best = candidates[int(np.argmax(objective))]
    below = y_score[y_score < best]
    return float((best + below.max()) / 2) if below.size else float(best)


def cross_validated_rule(y_true, y_score, groups, rule=DEFAULT_RULE, folds=5, repeats=20):
    """How the rule carries over to patients it was not chosen on: each fold's scans decided at the
    threshold the rule picks on the other folds (folds by group, i.e. patient), averaged over
    `repeats` shuffles -> {sensitivity, specificity, accuracy, folds, repeats}."""
    y_true, y_score = labels_and_scores(y_true, y_score)
    runs = []
    for seed in range(repeats):
        fold = group_folds(groups, folds, seed)
        predicted = np.zeros(y_true.size, dtype=bool)
        for k in range(folds):
            threshold = choose_threshold(y_true[fold != k], y_score[fold != k], rule)
            predicted[fold == k] = y_score[fold == k] >= threshold
        actual = y_true == 1
        runs.append((predicted[actual].mean(), (~predicted[~actual]).mean(), (predicted == actual).mean()))
    sensitivity, specificity, accuracy = (float(value) for value in np.mean(runs, axis=0))
    return {
        "sensitivity": sensitivity,
        "specificity": specificity,
        "accuracy": accuracy,
        "folds": folds,
        "repeats": repeats,
    }

"""Calibrated probabilities: Platt scaling on the model's log-odds, and how to measure calibration.

The network's sigmoid is over-confident (half of the pediatric scans score above 0.99), so the
probability shown is `sigmoid(a * logit(p) + b)`, with `a` and `b` fitted by maximum likelihood on
labeled images the model was not trained on, and stored in the model's metadata as
`probability_calibration`. The map is increasing, so the ranking (AUC) is unchanged; the stored
threshold is on the calibrated scale.

Pure numpy (matplotlib only inside the PNG renderer), importable without TensorFlow.
"""

import numpy as np

from classifier.metrics import _figure_png, group_folds, labels_and_scores

# LiteRT's float32 sigmoid rounds to exactly 0 or 1 beyond about 16 log-odds: clip, so the
# log-odds stay finite (and such scans keep the most extreme calibrated probability).
PROBABILITY_CLIP = 1e-7
ECE_BINS = 10


def logit(probabilities):
    p = np.clip(np.asarray(probabilities, dtype=np.float64), PROBABILITY_CLIP, 1 - PROBABILITY_CLIP)
    return np.log(p / (1 - p))


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))


def fit_platt(labels, probabilities, iterations=100):
    """Maximum-likelihood (a, b) of P(pneumonia) = sigmoid(a * logit(p) + b): Newton's method,
    each step halved until the likelihood improves (saturated scores make plain Newton overshoot)."""
    labels, probabilities = labels_and_scores(labels, probabilities)
    if labels.min() == labels.max():
        raise ValueError("fitting a calibration needs both normal and pneumonia images")
    z = logit(probabilities)

    def loss(params):
        margin = params[0] * z + params[1]
        return float(np.sum(np.logaddexp(0, margin) - labels * margin))

    params = np.array([1.0, 0.0])
    current = loss(params)
    for _ in range(iterations):
        p = sigmoid(params[0] * z + params[1])
        gradient = np.array([np.sum((p - labels) * z), np.sum(p - labels)])
        w = p * (1 - p) + 1e-12
        hessian = np.array([[np.sum(w * z * z), np.sum(w * z)], [np.sum(w * z), np.sum(w)]])
        step = np.linalg.solve(hessian + 1e-9 * np.eye(2), gradient)
        scale = 1.0
        while scale > 1e-8 and loss(params - scale * step) > current:
            scale /= 2
        params = params - scale * step
        improved = current - loss(params)
        current = loss(params)
        if improved < 1e-10:
            break
    a, b = float(params[0]), float(params[1])
    if a <= 0:
        raise ValueError("the sample ranks pneumonia below normal: no increasing calibration fits it")
    return a, b


def platt_calibration(labels, probabilities, fitted_on):
    """The metadata entry: method, parameters, and the sample it was fitted on."""
    a, b = fit_platt(labels, probabilities)
    return {"method": "platt", "a": a, "b": b, "fitted_on": fitted_on, "n": int(len(labels))}


def out_of_fold(labels, probabilities, groups, folds=5, seed=0):
    """Each image's probability calibrated by a Platt fit on the other folds (folds by group, e.g.
    patient): an honest estimate of how calibrated unseen images will be."""
    labels, probabilities = labels_and_scores(labels, probabilities)
    fold = group_folds(groups, folds, seed)
    calibrated = np.empty_like(probabilities)
    for k in range(folds):
        a, b = fit_platt(labels[fold != k], probabilities[fold != k])
        calibrated[fold == k] = sigmoid(a * logit(probabilities[fold == k]) + b)
    return calibrated


def cross_validated_calibration(labels, probabilities, groups, folds=5, repeats=20):
    """ECE and Brier of `out_of_fold` calibrations, mean over `repeats` shuffles of the folds (one
    split of a small sample moves the ECE by about a point) -> {ece, ece_sd, brier, folds, repeats}."""
    labels, probabilities = labels_and_scores(labels, probabilities)
    runs = [out_of_fold(labels, probabilities, groups, folds, seed) for seed in range(repeats)]
    eces = [expected_calibration_error(labels, run) for run in runs]
    return {
        "ece": float(np.mean(eces)),
        "ece_sd": float(np.std(eces)),
        "brier": float(np.mean([brier_score(labels, run) for run in runs])),
        "folds": folds,
        "repeats": repeats,
    }


def apply(calibration, probabilities):
    """Raw model probabilities -> calibrated ones (unchanged without a calibration)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if not calibration:
        return probabilities
    if calibration.get("method") != "platt":
        raise ValueError(f"unknown probability calibration {calibration.get('method')!r}")
    return sigmoid(calibration["a"] * logit(probabilities) + calibration["b"])


def calibrated_metadata(metadata, calibration):
    """The artifact's metadata with `calibration` in force: the threshold and the recorded
    metrics' thresholds mapped onto the calibrated scale (same decisions: the map is increasing).
    A calibration already there is replaced; the thresholds are mapped from the raw scale."""
    previous = metadata.get("probability_calibration")

    def rescaled(threshold):
        if threshold is None:
            return None
        raw = threshold if not previous else uncalibrated(previous, threshold)
        return float(apply(calibration, [raw])[0])

    updated = {**metadata, "probability_calibration": calibration, "threshold": rescaled(metadata.get("threshold"))}
    for name in ("validation", "site_calibration"):
        if isinstance(metadata.get(name), dict) and "threshold" in metadata[name]:
            updated[name] = {**metadata[name], "threshold": rescaled(metadata[name]["threshold"])}
    return updated


def uncalibrated(calibration, probability):
    """The raw probability that `calibration` maps onto `probability` (e.g. a threshold)."""
    return float(sigmoid((logit([probability])[0] - calibration["b"]) / calibration["a"]))


def expected_calibration_error(labels, probabilities, bins=ECE_BINS):
    """ECE over equal-width probability bins: the sample-weighted mean of |observed pneumonia
    share - mean predicted probability| per bin. None without samples."""
    labels, probabilities = labels_and_scores(labels, probabilities)
    if labels.size == 0:
        return None
    index = np.minimum((probabilities * bins).astype(int), bins - 1)
    error = 0.0
    for b in range(bins):
        in_bin = index == b
        if in_bin.any():
            error += in_bin.mean() * abs(labels[in_bin].mean() - probabilities[in_bin].mean())
    return float(error)


def brier_score(labels, probabilities):
    labels, probabilities = labels_and_scores(labels, probabilities)
    return float(np.mean((probabilities - labels) ** 2)) if labels.size else None


def reliability_bins(labels, probabilities, bins=ECE_BINS):
    """Per equal-width bin: its range, count, mean predicted probability and observed share."""
    labels, probabilities = labels_and_scores(labels, probabilities)
    index = np.minimum((probabilities * bins).astype(int), bins - 1)
    rows = []
    for b in range(bins):
        in_bin = index == b
        count = int(in_bin.sum())
        rows.append(
            {
                "low": b / bins,
                "high": (b + 1) / bins,
                "n": count,
                "mean_probability": float(probabilities[in_bin].mean()) if count else None,
                "observed": float(labels[in_bin].mean()) if count else None,
            }
        )
    return rows


def reliability_png(labels, probabilities, title="Reliability"):
    """The reliability diagram: observed pneumonia share against mean predicted probability per bin."""
    from matplotlib.figure import Figure  # Agg canvas, no pyplot global state

    rows = [row for row in reliability_bins(labels, probabilities) if row["n"]]
    figure = Figure(figsize=(4.5, 4.5))
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    axes.plot(
        [row["mean_probability"] for row in rows],
        [row["observed"] for row in rows],
        marker="o",
        color="#1f5fa8",
        label=f"model (ECE {expected_calibration_error(labels, probabilities):.3f})",
    )
    for row in rows:
        axes.annotate(
            str(row["n"]),
            (row["mean_probability"], row["observed"]),
            fontsize=7,
            xytext=(3, -9),
            textcoords="offset points",
        )
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("mean predicted probability (10 equal-width bins; counts beside)")
    axes.set_ylabel("observed share of pneumonia")
    axes.set_title(title)
    axes.legend(loc="upper left", fontsize=8)
    return _figure_png(figure)

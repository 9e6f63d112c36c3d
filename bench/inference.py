"""Inference benchmark: what a naive app does vs what the worker does, on the same real images.

    python bench/inference.py --images DIR [--model PATH, default the bundled model]

DIR is searched recursively for PNG/JPEG files. Every path decodes the files first (not
timed) and includes preprocessing in its timing, so the three differ only in how the
model is run:

  (a) load the Keras model + model.predict, per image (a naive app reloading per request)
  (b) Keras model loaded once + model.predict, per image
  (c) our path: Predictor (loaded once, warmed up, LiteRT/XNNPACK) .predict_proba, per image

Each prints ms/scan (p50, p95) and scans/s; the last line compares the medians.
"""

import argparse
import gc
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere

from classifier.data import IMAGE_SUFFIXES, read_image  # noqa: E402
from classifier.preprocess import preprocess_views  # noqa: E402

DEFAULT_MODEL = (
    Path(__file__).resolve().parent.parent / "classifier" / "bundled" / "mnv2-ensemble-2026-12-02" / "pneumonia.keras"
)


def timed(function, items):
    """Calls function(item) for each item -> per-call durations in milliseconds."""
    durations = []
    for item in items:
        started = time.perf_counter()
        function(item)
        durations.append((time.perf_counter() - started) * 1000)
    return np.array(durations)


def report(label, durations_ms):
    p50, p95 = np.percentile(durations_ms, [50, 95])
    print(
        f"{label:<52} n={len(durations_ms):<4} p50 {p50:9.2f} ms/scan  "
        f"p95 {p95:9.2f} ms/scan  {1000 / durations_ms.mean():8.1f} scans/s",
        flush=True,
    )
    return p50


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", required=True, help="folder of PNG/JPEG chest X-rays (searched recursively)")
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="the .keras artifact")
    parser.add_argument("--limit", type=int, default=200, help="images for (c) (default 200)")
    parser.add_argument("--keras-runs", type=int, default=40, help="images for (b) (default 40)")
    parser.add_argument(
        "--naive-runs", type=int, default=5, help="images for (a), each reloading the model (default 5)"
    )
    args = parser.parse_args()

    paths = sorted(p for p in Path(args.images).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)[: args.limit]
    if not paths:
        parser.error(f"no PNG/JPEG files under {args.images}")
    images = [read_image(path) for path in paths]
    print(f"{len(images)} images from {args.images}; model {args.model}; {os.cpu_count()} CPU cores", flush=True)

    import keras

    from classifier.artifact import load_keras_model, read_metadata
    from classifier.inference import Predictor

    metadata = read_metadata(args.model)
    size, backbone = metadata["input_size"], metadata["backbone"]
    zooms = metadata["preprocessing"]["test_time_zooms"]
    print(f"each scan's probability averages {len(zooms)} view(s), zooms {zooms}, in all three paths")

    def keras_probability(model, pixels):
        return model.predict(preprocess_views(pixels, size, backbone, zooms), verbose=0).mean()

    def naive(pixels):
        keras_probability(keras.models.load_model(args.model, compile=False), pixels)

    p50_a = report("(a) load model + model.predict per image", timed(naive, images[: args.naive_runs]))

    def loaded_once(pixels_list):
        model = load_keras_model(args.model)
        keras_probability(model, images[0])  # warm-up, as (c) gets
        return timed(lambda pixels: keras_probability(model, pixels), pixels_list)

    p50_b = report("(b) model loaded once + model.predict per image", loaded_once(images[: args.keras_runs]))

    # The worker holds one model; the copies (a) and (b) loaded would burden (c) (garbage collection).
    keras.backend.clear_session()
    gc.collect()
    started = time.perf_counter()
    predictor = Predictor.load(args.model)
    print(f"Predictor.load (sha256 check, LiteRT + Keras load, warm-up): {time.perf_counter() - started:.2f} s")
    p50_c = report(
        "(c) Predictor.predict_proba per image (ours)", timed(lambda p: predictor.predict_proba([p]), images)
    )

    batch = 16
    batches = [images[i : i + batch] for i in range(0, len(images) - batch + 1, batch)]
    if batches:
        per_scan = timed(predictor.predict_proba, batches) / batch
        report(f"(c) batched, {batch} scans per call (per scan)", per_scan)
    gradcam = timed(predictor.gradcam, images[:20])
    report("Grad-CAM heatmap per image (Keras, tf.function)", gradcam)

    print(f"speedup: (c) is {p50_a / p50_c:.0f}x (a) and {p50_b / p50_c:.1f}x (b)")


if __name__ == "__main__":
    main()

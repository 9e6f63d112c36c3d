"""Grad-CAM heatmaps as images for the review page (the heatmap itself comes from
`Predictor.gradcam`).

- `heatmap_png(heatmap, width, height, strength)`: the heatmap alone, RGBA, transparent where the
  model saw nothing, so the page can lay it over the scan with an opacity slider. Grad-CAM is
  normalized to its own peak, so a scan the model finds normal would show its noise as loudly as
  a pneumonia's opacity: the worker passes the probability as `strength`, which scales the opacity.
- `overlay_png(pixels, heatmap, alpha)`: the scan with the heatmap blended in, one PNG;
  `evaluate_model --plots` writes a few (classifier/evaluate.py) for offline review.

OpenCV does the colouring and PNG encoding, so no plotting library is loaded.
"""

import cv2
import numpy as np

from classifier.preprocess import stretch_to_uint8, to_grayscale

MAX_OVERLAY_SIDE = 1024  # large DICOMs are drawn downscaled; the heatmap is only 224x224


def _check_heatmap(heatmap):
    heatmap = np.asarray(heatmap, dtype=np.float32)
    if heatmap.ndim != 2:
        raise ValueError(f"heatmap must be 2-D, got shape {heatmap.shape}")
    return np.clip(heatmap, 0.0, 1.0)


def _colour(heatmap, width, height):
    """Heatmap -> (RGB uint8 jet colours, float weights in [0, 1]) at width x height."""
    heat = cv2.resize(_check_heatmap(heatmap), (width, height), interpolation=cv2.INTER_LINEAR)
    bgr = cv2.applyColorMap(np.rint(heat * 255).astype(np.uint8), cv2.COLORMAP_JET)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), heat


def _encode_png(rgb_or_rgba):
    code = cv2.COLOR_RGBA2BGRA if rgb_or_rgba.shape[2] == 4 else cv2.COLOR_RGB2BGR
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb_or_rgba, code))
    if not ok:
        raise ValueError("PNG encoding failed")
    return encoded.tobytes()


def heatmap_rgba(heatmap, width, height, strength=1.0):
    """(height, width, 4) uint8: jet colours, opacity growing with the heat, times `strength` in [0, 1]."""
    rgb, heat = _colour(heatmap, width, height)
    alpha = np.rint(heat * float(np.clip(strength, 0.0, 1.0)) * 255).astype(np.uint8)
    return np.dstack([rgb, alpha])


def heatmap_png(heatmap, width=None, height=None, strength=1.0):
    """The heatmap alone as an RGBA PNG (bytes), by default at its own size; `strength` scales its opacity."""
    heatmap = _check_heatmap(heatmap)
    height = height or heatmap.shape[0]
    width = width or heatmap.shape[1]
    return _encode_png(heatmap_rgba(heatmap, width, height, strength))


def overlay_png(pixels, heatmap, alpha=0.45):
    """The scan (any decoded pixel array) with the heatmap blended in, as PNG bytes.

    `alpha` is the heatmap's opacity where it is hottest; cold regions stay plain grey.
    """
    return _encode_png(overlay_rgb(pixels, heatmap, alpha))


def overlay_rgb(pixels, heatmap, alpha=0.45):
    """overlay_png's picture as a (height, width, 3) uint8 array (the PACS's secondary capture)."""
    gray = stretch_to_uint8(to_grayscale(pixels))
    height, width = gray.shape
    scale = min(1.0, MAX_OVERLAY_SIDE / max(height, width))
    if scale < 1.0:
        width, height = round(width * scale), round(height * scale)
        gray = cv2.resize(gray, (width, height), interpolation=cv2.INTER_AREA)
    rgb, heat = _colour(heatmap, width, height)
    weight = (alpha * heat)[:, :, None]
    blended = (1.0 - weight) * gray[:, :, None].astype(np.float32) + weight * rgb
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)

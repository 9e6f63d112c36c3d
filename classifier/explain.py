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
    gray = _overlay_base(pixels)
    height, width = gray.shape
    rgb, heat = _colour(heatmap, width, height)
    return _encode_png(_blend(gray, rgb, alpha * heat))


def overlay_rgba(pixels, rgba, alpha=0.45):
    """The scan with a stored heatmap PNG's pixels (RGBA, as heatmap_png wrote them) laid over it,
    as the review page shows them: (height, width, 3) uint8 (the PACS's secondary capture)."""
    gray = _overlay_base(pixels)
    height, width = gray.shape
    rgba = cv2.resize(np.asarray(rgba, dtype=np.uint8), (width, height), interpolation=cv2.INTER_LINEAR)
    return _blend(gray, rgba[:, :, :3].astype(np.float32), alpha * rgba[:, :, 3].astype(np.float32) / 255.0)


def _overlay_base(pixels):
    """The scan in grey, drawn at most MAX_OVERLAY_SIDE pixels a side."""
    gray = stretch_to_uint8(to_grayscale(pixels))
    height, width = gray.shape
    scale = min(1.0, MAX_OVERLAY_SIDE / max(height, width))
    if scale < 1.0:
        gray = cv2.resize(gray, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
    return gray


def _blend(gray, rgb, weight):
    weight = weight[:, :, None]
    blended = (1.0 - weight) * gray[:, :, None].astype(np.float32) + weight * rgb
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)

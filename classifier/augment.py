"""Training-time augmentation for chest X-rays, applied before CLAHE.

It imitates how the same chest looks on another machine or with another technician:
small rotations, shifts and zooms, a different aspect ratio before squashing, other
exposure (gamma, contrast, brightness), blur and noise. No vertical flip (never seen
in practice) and no horizontal flip (the heart sits on the left).

It also burns random side markers ("L", "R", ...) into the film: each hospital's markers
look different, and Grad-CAM showed the model looking at them, a shortcut that would
not carry over to another site.
"""

import cv2
import numpy as np

MAX_ROTATION_DEGREES = 10
MAX_SHIFT_FRACTION = 0.08
ZOOM_RANGE = (0.85, 1.15)
ASPECT_RANGE = (0.85, 1.15)
GAMMA_RANGE = (0.6, 1.6)
CONTRAST_RANGE = (0.7, 1.3)
BRIGHTNESS_RANGE = (-0.12, 0.12)
MARKER_PROBABILITY = 0.5
MARKER_TEXTS = ("L", "R", "AP", "PA", "LT", "RT")


def random_geometry(gray, rng):
    size = gray.shape[0]
    zoom = rng.uniform(*ZOOM_RANGE)
    aspect = rng.uniform(*ASPECT_RANGE)
    matrix = cv2.getRotationMatrix2D(
        (size / 2, size / 2), rng.uniform(-MAX_ROTATION_DEGREES, MAX_ROTATION_DEGREES), 1.0
    )
    matrix[:, :2] *= np.array([[zoom * aspect], [zoom / aspect]])
    matrix[:, 2] += (size / 2) - matrix[:, :2] @ np.array([size / 2, size / 2])
    matrix[:, 2] += rng.uniform(-MAX_SHIFT_FRACTION, MAX_SHIFT_FRACTION, size=2) * size
    return cv2.warpAffine(gray, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def random_exposure(gray, rng):
    x = gray.astype(np.float32) / 255.0
    x = x ** rng.uniform(*GAMMA_RANGE)
    x = (x - 0.5) * rng.uniform(*CONTRAST_RANGE) + 0.5 + rng.uniform(*BRIGHTNESS_RANGE)
    if rng.random() < 0.3:
        x = cv2.GaussianBlur(x, (0, 0), sigmaX=rng.uniform(0.5, 1.2))
    if rng.random() < 0.3:
        x = x + rng.normal(0.0, rng.uniform(0.005, 0.03), size=x.shape).astype(np.float32)
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def random_marker(gray, rng):
    if rng.random() >= MARKER_PROBABILITY:
        return gray
    size = gray.shape[0]
    marked = gray.copy()
    scale = rng.uniform(0.4, 1.0) * size / 224
    # Markers sit beside the chest: in the outer fifth of the film, left or right.
    x = rng.uniform(0.02, 0.2) if rng.random() < 0.5 else rng.uniform(0.72, 0.88)
    origin = (int(x * size), int(rng.uniform(0.1, 0.97) * size))
    cv2.putText(
        marked,
        str(rng.choice(MARKER_TEXTS)),
        origin,
        cv2.FONT_HERSHEY_SIMPLEX,
        scale,
        int(rng.uniform(170, 255)),
        thickness=max(1, round(2 * scale)),
        lineType=cv2.LINE_AA,
    )
    return marked


def augment_grayscale(gray, rng):
    """(size, size) uint8 before CLAHE -> a randomly re-acquired copy, same shape and dtype."""
    return random_exposure(random_geometry(random_marker(gray, rng), rng), rng)

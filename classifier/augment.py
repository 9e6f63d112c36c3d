"""Training-time augmentation for chest X-rays, applied before CLAHE.

It imitates how the same chest looks on another machine or with another technician:
small rotations, shifts and zooms, a different aspect ratio before squashing, other
exposure (gamma, contrast, brightness), blur and noise. No vertical flip (never seen
in practice) and no horizontal flip (the heart sits on the left).
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
    return cv2.warpAffine(
        gray, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def random_exposure(gray, rng):
    x = gray.astype(np.float32) / 255.0
    x = x ** rng.uniform(*GAMMA_RANGE)
    x = (x - 0.5) * rng.uniform(*CONTRAST_RANGE) + 0.5 + rng.uniform(*BRIGHTNESS_RANGE)
    if rng.random() < 0.3:
        x = cv2.GaussianBlur(x, (0, 0), sigmaX=rng.uniform(0.5, 1.2))
    if rng.random() < 0.3:
        x = x + rng.normal(0.0, rng.uniform(0.005, 0.03), size=x.shape).astype(np.float32)
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def augment_grayscale(gray, rng):
    """(size, size) uint8 before CLAHE -> a randomly re-acquired copy, same shape and dtype."""
    return random_exposure(random_geometry(gray, rng), rng)

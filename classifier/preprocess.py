"""The one preprocessing path: decoded pixels -> model input.

Training, evaluation and inference all call `preprocess_image`, so a scan seen by the
worker goes through exactly the steps the model was trained on:

1. grayscale (RGB is averaged with the usual luma weights, an alpha channel is dropped),
2. resized to the model's square input by squashing (the shared dataset was made that
   way, so the aspect ratio is no signal the model may learn),
3. intensity stretched to the full 0..255 range whatever the bit depth (8-bit JPEG,
   12/16-bit DICOM pixel data, floats),
4. CLAHE (contrast-limited adaptive histogram equalisation): it evens out how bright and
   how contrasted different X-ray machines make the same anatomy, the main difference
   between the training split and the deployment split,
5. repeated to three channels and passed through the backbone's own `preprocess_input`.

A model may average its probability over a few test-time views of each scan, the same
image slightly zoomed out (step 3b, before CLAHE): the zooms are stored in its metadata.

Only numpy and OpenCV are needed here; Keras is imported when a backbone's
`preprocess_input` is first asked for.
"""

import functools

import cv2
import numpy as np

CLAHE_CLIP_LIMIT = 2.0
CLAHE_TILE_GRID = (8, 8)


class ImageError(ValueError):
    """The pixel array cannot be a chest X-ray image (wrong shape, empty, not finite)."""


def to_grayscale(pixels):
    """Any decoded image -> 2-D float32 array, one value per pixel, in its own units."""
    pixels = np.asarray(pixels)
    if pixels.dtype == bool or not np.issubdtype(pixels.dtype, np.number):
        raise ImageError(f"pixel array has non-numeric dtype {pixels.dtype}")
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.ndim == 3 and pixels.shape[2] in (3, 4):
        rgb = pixels[:, :, :3].astype(np.float32)
        gray = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    elif pixels.ndim == 2:
        gray = pixels.astype(np.float32)
    else:
        raise ImageError(f"expected a 2-D grayscale or HxWx3/HxWx4 colour image, got shape {pixels.shape}")
    if gray.shape[0] < 2 or gray.shape[1] < 2:
        raise ImageError(f"image is too small: {gray.shape[1]}x{gray.shape[0]} pixels")
    if not np.isfinite(gray).all():
        raise ImageError("image contains NaN or infinite values")
    return gray


def stretch_to_uint8(gray):
    """Maps the image's own min..max onto 0..255 (a constant image becomes all zeros)."""
    low, high = float(gray.min()), float(gray.max())
    if high <= low:
        return np.zeros(gray.shape, dtype=np.uint8)
    scaled = (gray - low) * (255.0 / (high - low))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def resized_grayscale(pixels, size):
    """Steps 1-3: grayscale, squashed to (size, size), stretched to uint8."""
    gray = to_grayscale(pixels)
    # Squash in float so 16-bit detail survives; INTER_AREA avoids aliasing when shrinking.
    interpolation = cv2.INTER_AREA if gray.shape[0] >= size else cv2.INTER_LINEAR
    resized = cv2.resize(gray, (size, size), interpolation=interpolation)
    return stretch_to_uint8(resized)


def equalize(gray_uint8):
    clahe = cv2.createCLAHE(clipLimit=CLAHE_CLIP_LIMIT, tileGridSize=CLAHE_TILE_GRID)
    return clahe.apply(gray_uint8)


@functools.cache
def backbone_preprocess_input(backbone):
    """The `preprocess_input` that belongs to a Keras Applications backbone."""
    from keras import applications

    modules = {
        "mobilenet_v2": applications.mobilenet_v2,
        "mobilenet": applications.mobilenet,
        "efficientnet": applications.efficientnet,
        "densenet": applications.densenet,
        "resnet50": applications.resnet50,
    }
    if backbone not in modules:
        raise ValueError(f"unknown backbone {backbone!r}; known: {sorted(modules)}")
    return modules[backbone].preprocess_input


def to_model_input(equalized_uint8, backbone):
    """Step 5: (size, size) uint8 -> (size, size, 3) float32 model input."""
    rgb = np.repeat(equalized_uint8[:, :, None].astype(np.float32), 3, axis=2)
    return backbone_preprocess_input(backbone)(rgb).astype(np.float32, copy=False)


def preprocessing_spec(size, backbone, test_time_zooms=(1.0,)):
    """What `preprocess_views` does, as stored in a model's metadata and checked on load.

    `test_time_zooms` are the views a scan's probability is averaged over (1.0 = as is).
    """
    return {
        "function": "classifier.preprocess.preprocess_views",
        "grayscale": "luma 0.299/0.587/0.114, alpha dropped",
        "resize": f"squash to {size}x{size}",
        "intensity": "min-max stretch to uint8",
        "clahe": {"clip_limit": CLAHE_CLIP_LIMIT, "tile_grid": list(CLAHE_TILE_GRID)},
        "channels": 3,
        "backbone_preprocess_input": backbone,
        "test_time_zooms": [float(zoom) for zoom in test_time_zooms],
    }


def zoomed(gray, zoom):
    """Scales an image about its centre; zoom < 1 shows more surroundings (edges replicated)."""
    if zoom == 1.0:
        return gray
    size = gray.shape[0]
    matrix = cv2.getRotationMatrix2D((size / 2, size / 2), 0, zoom)
    return cv2.warpAffine(gray, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def preprocess_image(pixels, size=224, backbone="mobilenet_v2", zoom=1.0):
    """Any decoded image -> the model's (size, size, 3) float32 input (one view)."""
    return to_model_input(equalize(zoomed(resized_grayscale(pixels, size), zoom)), backbone)


def preprocess_views(pixels, size=224, backbone="mobilenet_v2", zooms=(1.0,)):
    """Any decoded image -> (len(zooms), size, size, 3): the test-time views of one scan."""
    gray = resized_grayscale(pixels, size)
    return np.stack([to_model_input(equalize(zoomed(gray, zoom)), backbone) for zoom in zooms])


def preprocess_batch(images, size=224, backbone="mobilenet_v2"):
    """A list of decoded images -> (n, size, size, 3) float32 batch (one view each).

    Only the tests' tiny model (tests/support/tiny_model.py) uses it; the product goes
    through `preprocess_views`.
    """
    batch = np.empty((len(images), size, size, 3), dtype=np.float32)
    for i, pixels in enumerate(images):
        batch[i] = preprocess_image(pixels, size, backbone)
    return batch

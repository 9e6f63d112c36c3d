"""The one preprocessing path: every kind of decoded image becomes the same model input."""

import io

import cv2
import numpy as np
import pytest

from classifier.data import decode_image_bytes
from classifier.preprocess import ImageError, preprocess_batch, preprocess_image, preprocess_views

SIZE = 64


@pytest.fixture
def chest_8bit():
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:120, 0:90]
    image = 60 + 120 * np.sin(np.pi * x / 90) * np.sin(np.pi * y / 120) + rng.normal(0, 5, (120, 90))
    return np.clip(image, 0, 255).astype(np.uint8)


def check_model_input(array):
    assert array.shape == (SIZE, SIZE, 3)
    assert array.dtype == np.float32
    assert array.min() >= -1.0 and array.max() <= 1.0  # MobileNetV2's preprocess_input range
    assert np.array_equal(array[:, :, 0], array[:, :, 1]) and np.array_equal(array[:, :, 0], array[:, :, 2])


def test_grayscale_8bit_is_squashed_to_the_model_input(chest_8bit):
    model_input = preprocess_image(chest_8bit, SIZE)
    check_model_input(model_input)
    assert model_input.max() - model_input.min() > 1.5  # stretched and equalised, not washed out


def test_16bit_image_gives_the_same_input_as_its_8bit_version(chest_8bit):
    # A 12-bit DICOM-style range: same picture, 16 times the values.
    chest_16bit = chest_8bit.astype(np.uint16) * 16
    np.testing.assert_allclose(preprocess_image(chest_16bit, SIZE), preprocess_image(chest_8bit, SIZE), atol=1e-6)


def test_float_pixels_are_accepted(chest_8bit):
    check_model_input(preprocess_image(chest_8bit.astype(np.float64) / 255.0, SIZE))


def test_rgb_rgba_and_single_channel_equal_grayscale(chest_8bit):
    gray = preprocess_image(chest_8bit, SIZE)
    rgb = np.repeat(chest_8bit[:, :, None], 3, axis=2)
    rgba = np.dstack([rgb, np.full(chest_8bit.shape, 128, np.uint8)])  # alpha is ignored
    for colour in (rgb, rgba, chest_8bit[:, :, None]):
        model_input = preprocess_image(colour, SIZE)
        check_model_input(model_input)
        np.testing.assert_allclose(model_input, gray, atol=1 / 127.5)


def test_constant_image_is_a_valid_input():
    check_model_input(preprocess_image(np.full((50, 50), 77, np.uint8), SIZE))


def test_batch_equals_single_images(chest_8bit):
    batch = preprocess_batch([chest_8bit, chest_8bit.T.copy()], SIZE)
    assert batch.shape == (2, SIZE, SIZE, 3) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch[1], preprocess_image(chest_8bit.T.copy(), SIZE))


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((10, 10, 2), np.uint8),
        np.zeros((4, 4, 4, 4), np.uint8),
        np.zeros((1, 100), np.uint8),
        np.array([[np.nan, 1.0], [2.0, 3.0]]),
        np.array([["a", "b"], ["c", "d"]]),
    ],
)
def test_impossible_pixel_arrays_are_refused_clearly(bad):
    with pytest.raises(ImageError):
        preprocess_image(bad, SIZE)


def test_corrupt_image_bytes_give_a_clear_error(chest_8bit):
    png = cv2.imencode(".png", chest_8bit)[1].tobytes()
    assert decode_image_bytes(png).shape == chest_8bit.shape
    with pytest.raises(ImageError, match="not a decodable PNG or JPEG"):
        decode_image_bytes(png[: len(png) // 3] + b"\x00" * 20, name="broken.png")
    with pytest.raises(ImageError):
        decode_image_bytes(b"this is not an image")


def test_decoded_colour_png_is_rgb_and_16bit_png_keeps_its_depth(chest_8bit):
    rgb = np.dstack([chest_8bit, chest_8bit // 2, np.zeros_like(chest_8bit)])
    decoded = decode_image_bytes(cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes())
    np.testing.assert_array_equal(decoded, rgb)
    deep = chest_8bit.astype(np.uint16) * 200
    assert decode_image_bytes(cv2.imencode(".png", deep)[1].tobytes()).dtype == np.uint16


@pytest.mark.parametrize("kind", ["gray_jpeg", "gray_png", "rgb_png", "rgba_png", "palette_png", "16bit_png"])
def test_training_decodes_exactly_as_the_upload_and_the_worker_do(chest_8bit, kind):
    from PIL import Image

    from radiology.ingest import decode_upload

    images = {
        "gray_jpeg": ("JPEG", Image.fromarray(chest_8bit)),
        "gray_png": ("PNG", Image.fromarray(chest_8bit)),
        "rgb_png": ("PNG", Image.fromarray(np.dstack([chest_8bit, chest_8bit // 2, chest_8bit]))),
        "rgba_png": ("PNG", Image.fromarray(np.dstack([chest_8bit] * 3 + [255 - chest_8bit]))),
        "palette_png": ("PNG", Image.fromarray(chest_8bit).convert("P")),
        "16bit_png": ("PNG", Image.fromarray(chest_8bit.astype(np.uint16) * 200)),
    }
    image_format, image = images[kind]
    buffer = io.BytesIO()
    image.save(buffer, image_format)
    ours, uploaded = decode_image_bytes(buffer.getvalue()), decode_upload(buffer.getvalue()).pixels
    assert ours.dtype == uploaded.dtype
    np.testing.assert_array_equal(ours, uploaded)


def test_views_start_with_the_scan_as_is_and_zoom_out_from_its_centre(chest_8bit):
    views = preprocess_views(chest_8bit, SIZE, zooms=(1.0, 0.8))
    assert views.shape == (2, SIZE, SIZE, 3) and views.dtype == np.float32
    np.testing.assert_array_equal(views[0], preprocess_image(chest_8bit, SIZE))
    np.testing.assert_array_equal(views[1], preprocess_image(chest_8bit, SIZE, zoom=0.8))
    assert not np.array_equal(views[0], views[1])
    check_model_input(views[1])

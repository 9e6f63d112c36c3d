"""Pieces of the training procedure that can be checked in seconds."""

import numpy as np

from classifier.augment import augment_grayscale
from classifier.train import AugmentedBatches, class_weights


def test_class_weights_balance_the_classes():
    labels = np.array([0] * 25 + [1] * 75)
    weights = class_weights(labels)
    assert weights[0] * 25 == weights[1] * 75 == 50


def test_augmentation_keeps_shape_and_dtype_and_changes_the_image():
    gray = np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (64, 1))
    augmented = augment_grayscale(gray, np.random.default_rng(0))
    assert augmented.shape == gray.shape and augmented.dtype == np.uint8
    assert not np.array_equal(augmented, gray)


def test_augmented_batches_are_model_inputs_and_reproducible():
    gray = np.random.default_rng(0).integers(0, 256, (10, 32, 32), dtype=np.uint8)
    labels = np.array([0, 1] * 5)
    batches = AugmentedBatches(gray, labels, 4, "mobilenet_v2", seed=1)
    x, y = batches[0]
    assert len(batches) == 3 and x.shape == (4, 32, 32, 3) and x.dtype == np.float32
    assert x.min() >= -1 and x.max() <= 1 and y.dtype == np.float32
    np.testing.assert_array_equal(AugmentedBatches(gray, labels, 4, "mobilenet_v2", seed=1)[0][0], x)
    batches.on_epoch_end()
    assert not np.array_equal(batches[0][0], x)  # a new epoch sees new augmentations

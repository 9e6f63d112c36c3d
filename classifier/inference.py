"""The Predictor: one verified model per process, fast probabilities and Grad-CAM heatmaps.

Probabilities come from the LiteRT (TensorFlow Lite) conversion of the model, run by the
XNNPACK CPU delegate: on 2 cores about 13 times faster than `model.predict` per scan
(13.3x in the README's run of bench/inference.py), with the same outputs within 1e-4 (tests/classifier checks this).
Grad-CAM needs gradients, so it runs on the Keras model, through one compiled
`tf.function`.

    predictor = Predictor.load("classifier/bundled/mnv2-ensemble-2026-12-02/pneumonia.keras")
    probabilities = predictor.predict_proba([pixels_1, pixels_2])   # scans that wait together
    heatmap = predictor.gradcam(pixels_1)                            # (224, 224) in [0, 1]
    scores = predictor.image_scores([pixels_1, pixels_2])            # intended-use distances, or None

The intended-use image check (classifier.intended_use) runs on the Keras model's pooled block
outputs, when the artifact carries the fitted statistics.
"""

import os
import threading

import cv2
import numpy as np

from classifier import artifact
from classifier.calibration import apply as apply_calibration
from classifier.intended_use import FeatureStatistics, as_list, feature_model
from classifier.model import OUTPUT_LAYER
from classifier.preprocess import preprocess_image, preprocess_views

# Threads TensorFlow and LiteRT use in this process (use_threads); None: all the cores.
_threads = None


def use_threads(count):
    """Give TensorFlow (Grad-CAM) and LiteRT (probabilities) `count` threads in this process. A
    worker's processes share the machine: each taking every core makes them fight over them.
    Call it before the first model loads; TensorFlow refuses a change once it has started."""
    global _threads
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(count)
    tf.config.threading.set_inter_op_parallelism_threads(count)
    _threads = count


class Predictor:
    def __init__(self, keras_path, metadata, interpreter, keras_model, feature_statistics=None):
        self.keras_path = keras_path
        self.metadata = metadata
        # The artifact's own threshold; registry.get_predictor gives a site-calibrated
        # ModelVersion a copy with its threshold. None only while train_model chooses it.
        threshold = metadata["threshold"]
        self.threshold = None if threshold is None else float(threshold)
        # Platt scaling of the raw probabilities (classifier.calibration); the threshold is on its
        # scale. registry.get_predictor gives each ModelVersion a copy with its own.
        self.calibration = metadata.get("probability_calibration")
        self.input_size = int(metadata["input_size"])
        self.backbone = metadata["backbone"]
        self.test_time_zooms = metadata["preprocessing"]["test_time_zooms"]
        self._interpreter = interpreter
        self._input_index = interpreter.get_input_details()[0]["index"]
        self._output_index = interpreter.get_output_details()[0]["index"]
        self._keras_model = keras_model
        self._gradcam_step = _compiled_gradcam(keras_model, metadata["gradcam_layer"])
        # The image check: None for an artifact without fitted statistics (no check, and pages say so).
        self.image_check = (metadata.get("intended_use") or {}).get("image_check")
        self._feature_statistics = feature_statistics
        self._feature_step = None
        if feature_statistics is not None:
            self._feature_step = _compiled_call(feature_model(keras_model, feature_statistics.layers))
        self._lock = threading.Lock()  # one interpreter: calls from threads take turns

    @classmethod
    def load(cls, keras_path, num_threads=None):
        """Verifies the artifact's sha256s, loads both model forms once and warms them up.

        Raises `artifact.ArtifactError` when the files do not match their metadata.
        """
        from ai_edge_litert.interpreter import Interpreter

        metadata = artifact.verified_metadata(keras_path)
        interpreter = Interpreter(
            model_path=str(artifact.tflite_path(keras_path)),
            num_threads=num_threads or _threads or os.cpu_count() or 1,
        )
        interpreter.allocate_tensors()
        keras_model = artifact.load_keras_model(keras_path)
        statistics = None
        if (metadata.get("intended_use") or {}).get("image_check"):
            statistics = FeatureStatistics.load(artifact.features_path(keras_path))  # hash checked above
        predictor = cls(keras_path, metadata, interpreter, keras_model, statistics)
        predictor._warm_up()
        return predictor

    def _warm_up(self):
        blank = np.zeros((self.input_size, self.input_size), dtype=np.uint8)
        self.predict_proba([blank])
        self.gradcam(blank)
        self.image_scores([blank])

    # --- probabilities ------------------------------------------------------------------

    def preprocess(self, images):
        """-> (len(images) * views, size, size, 3): each scan's test-time views in a row."""
        return np.concatenate(
            [preprocess_views(pixels, self.input_size, self.backbone, self.test_time_zooms) for pixels in images]
        )

    def predict_proba(self, images, calibrated=True):
        """Decoded pixel arrays -> pneumonia probabilities, float array of len(images).

        Each probability is the mean over the model's test-time views of that scan, then
        calibrated (`calibrated=False`: the network's own, for fitting a calibration).
        """
        if len(images) == 0:
            return np.zeros(0, dtype=np.float32)
        views = self.predict_inputs(self.preprocess(images))
        raw = views.reshape(len(images), len(self.test_time_zooms)).mean(axis=1)
        if not calibrated or not self.calibration:
            return raw
        return apply_calibration(self.calibration, raw).astype(np.float32)

    def predict_inputs(self, batch):
        """Already preprocessed (n, size, size, 3) float32 inputs -> probabilities.

        The interpreter keeps a fixed batch of one: on a few CPU cores XNNPACK runs a
        batch no faster per scan than one scan after another (measured), while resizing
        the interpreter for each new batch size costs a re-allocation.
        """
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        probabilities = np.empty(len(batch), dtype=np.float32)
        with self._lock:
            for i in range(len(batch)):
                self._interpreter.set_tensor(self._input_index, batch[i : i + 1])
                self._interpreter.invoke()
                probabilities[i] = self._interpreter.get_tensor(self._output_index).reshape(-1)[0]
        return probabilities

    def predict_inputs_keras(self, batch):
        """The Keras model's outputs for the same inputs: the reference for the fast path."""
        return np.asarray(self._keras_model(batch, training=False)).reshape(-1)

    # --- intended use -------------------------------------------------------------------

    @property
    def population(self):
        """The patients the model was made for, as its metadata declares them (None: undeclared)."""
        return (self.metadata.get("intended_use") or {}).get("population")

    @property
    def image_threshold(self):
        return None if self.image_check is None else float(self.image_check["threshold"])

    def pooled_features(self, batch):
        """Preprocessed (n, size, size, 3) plain views -> [per feature layer (n, channels)]."""
        return [np.asarray(output, dtype=np.float64) for output in as_list(self._feature_step(batch))]

    def image_scores(self, images):
        """Intended-use distances of the scans' plain views (higher: less like the training
        images), or None when the artifact has no fitted statistics."""
        if self._feature_statistics is None:
            return None
        if len(images) == 0:
            return np.zeros(0)
        batch = np.stack([preprocess_image(pixels, self.input_size, self.backbone) for pixels in images])
        return self._feature_statistics.scores(self.pooled_features(batch))

    # --- explanation --------------------------------------------------------------------

    def gradcam(self, pixels):
        """Grad-CAM of the pneumonia logit at the last conv layer, on the scan as is.

        -> float32 (size, size) heatmap in [0, 1] at model input size (all zeros when no
        region pushes the score towards pneumonia).
        """
        batch = preprocess_image(pixels, self.input_size, self.backbone)[None]
        cam = np.asarray(self._gradcam_step(batch))[0]
        cam = cv2.resize(cam, (self.input_size, self.input_size), interpolation=cv2.INTER_CUBIC)
        cam = np.clip(cam, 0.0, None)
        peak = float(cam.max())
        return (cam / peak if peak > 0 else cam).astype(np.float32)


def _compiled_call(model):
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def call(batch):
        return model(batch, training=False)

    return call


def _compiled_gradcam(keras_model, layer_names):
    """One traced function: conv activations weighted by pooled gradients of the logit.

    The gradient is taken of the head's logit rather than its sigmoid, which rounds to
    exactly 1.0 for confident scans and would leave no gradient to explain. An ensemble names one
    conv layer per member (classifier.ensemble): their weighted maps are summed, each being that
    member's part of the shared logit.
    """
    import keras
    import tensorflow as tf

    head = keras_model.get_layer(OUTPUT_LAYER)
    conv_outputs = [keras_model.get_layer(name).output for name in as_list(layer_names)]
    to_conv = keras.Model(keras_model.input, conv_outputs)
    conv_to_head = keras.Model(conv_outputs, head.input)

    @tf.function(reduce_retracing=True)
    def step(batch):
        convs = as_list(to_conv(batch, training=False))
        with tf.GradientTape() as tape:
            tape.watch(convs)
            pooled = conv_to_head(convs, training=False)
            logit = tf.matmul(pooled, head.kernel) + head.bias
        gradients = tape.gradient(logit, convs)
        weighted = [
            tf.reduce_sum(conv * tf.reduce_mean(gradient, axis=(1, 2), keepdims=True), axis=-1)
            for conv, gradient in zip(convs, gradients)
        ]
        return tf.nn.relu(tf.add_n(weighted))

    return step

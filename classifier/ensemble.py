"""An ensemble of trained models as one network, so that it is still one artifact (one `.keras`,
one `.tflite`, one set of sha256s) served by the same Predictor.

The members share the input. Each member's pooled features feed one new sigmoid head whose weights
are the members' own head weights divided by their number, so the ensemble's logit is exactly the
mean of the members' logits. The first member keeps its layer names (the intended-use check reads
its blocks); the others' layers are prefixed `m2_`, `m3_`, ... Grad-CAM sums every member's last
convolutional map (`gradcam_layer` lists them), each weighted by its part of the shared logit.
"""

import numpy as np

from classifier.model import OUTPUT_LAYER

FEATURES_LAYER = "member_features"


def member_prefix(index):
    return "" if index == 0 else f"m{index + 1}_"


def _renamed_copy(member, inputs, prefix):
    """The member's layers, renamed with `prefix`, rebuilt on `inputs`, with its weights."""
    import keras

    def copy_layer(layer):
        config = layer.get_config()
        config["name"] = prefix + layer.name
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(member, input_tensors=inputs, clone_function=copy_layer)
    for layer in member.layers:
        if layer.weights:
            copy.get_layer(prefix + layer.name).set_weights(layer.get_weights())
    return copy


def combine(members, gradcam_layer):
    """Trained single models (same input, each ending in OUTPUT_LAYER) -> (ensemble model, its
    Grad-CAM layer names). `gradcam_layer` is the members' own last convolutional layer."""
    import keras

    if len(members) < 2:
        raise ValueError("an ensemble needs at least two models")
    input_shape = tuple(members[0].input.shape[1:])
    if any(tuple(member.input.shape[1:]) != input_shape for member in members):
        raise ValueError("the members' input sizes differ")
    inputs = keras.Input(input_shape, name="image")
    features, kernels, biases, gradcam_layers = [], [], [], []
    for index, member in enumerate(members):
        prefix = member_prefix(index)
        copy = _renamed_copy(member, inputs, prefix)
        head = copy.get_layer(prefix + OUTPUT_LAYER)
        features.append(head.input)
        kernel, bias = head.get_weights()
        kernels.append(kernel)
        biases.append(bias)
        gradcam_layers.append(prefix + gradcam_layer)
    joined = keras.layers.Concatenate(name=FEATURES_LAYER)(features)
    head = keras.layers.Dense(1, activation="sigmoid", name=OUTPUT_LAYER)
    outputs = head(joined)
    head.set_weights([np.concatenate(kernels) / len(members), np.mean(biases, axis=0)])
    model = keras.Model(inputs, outputs, name=f"pneumonia_ensemble_{len(members)}")
    return model, gradcam_layers

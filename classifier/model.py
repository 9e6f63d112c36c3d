"""The network: an ImageNet backbone with a new one-unit sigmoid head.

The backbone is built on the model's own input tensor, so its layers sit directly in the
model (no nested sub-model) and Grad-CAM can reach the last convolutional layer by name.
Keras is imported inside the functions, so the inference module can share the names
below without loading TensorFlow.
"""

DEFAULT_ALPHA = 0.5  # MobileNetV2 width of the shipped model; train_model's default too

OUTPUT_LAYER = "pneumonia_probability"  # the sigmoid head; Grad-CAM reads its logit

# name -> (keras.applications constructor, its last convolutional activation, for Grad-CAM)
BACKBONES = {
    "mobilenet_v2": ("MobileNetV2", "out_relu"),
}


def build_model(backbone="mobilenet_v2", alpha=DEFAULT_ALPHA, weights=None, input_size=224, dropout=0.3):
    """-> (model, backbone_layers).

    `weights` is None (random), "imagenet" (downloaded; needs internet), a Keras
    Applications `.h5` file, or a Keras 3 `.weights.h5` file saved with `save_weights`.
    """
    import keras

    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; known: {sorted(BACKBONES)}")
    constructor = getattr(keras.applications, BACKBONES[backbone][0])
    inputs = keras.Input((input_size, input_size, 3), name="image")
    weights_file = str(weights) if weights not in (None, "imagenet") else None
    load_after = weights_file is not None and weights_file.endswith(".weights.h5")
    base = constructor(
        input_tensor=inputs,
        include_top=False,
        alpha=alpha,
        weights=None if load_after else weights,
        pooling="avg",
    )
    if load_after:
        base.load_weights(weights_file)
    x = keras.layers.Dropout(dropout, name="head_dropout")(base.output)
    outputs = keras.layers.Dense(1, activation="sigmoid", name=OUTPUT_LAYER)(x)
    model = keras.Model(inputs, outputs, name=f"pneumonia_{backbone}")
    return model, base.layers[1:]  # base.layers[0] is our own input layer


def gradcam_layer_name(backbone):
    return BACKBONES[backbone][1]


def freeze_backbone(backbone_layers):
    for layer in backbone_layers:
        layer.trainable = False


def unfreeze_top(backbone_layers, n_layers):
    """Unfreezes the top `n_layers` backbone layers; BatchNorm stays frozen.

    A frozen BatchNormalization layer runs in inference mode in Keras 3, so its ImageNet
    statistics are kept while small fine-tuning batches pass through.
    """
    import keras

    for i, layer in enumerate(backbone_layers):
        top = i >= len(backbone_layers) - n_layers
        layer.trainable = top and not isinstance(layer, keras.layers.BatchNormalization)

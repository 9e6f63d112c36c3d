"""Training, top to bottom: data, split, model, phase 1 (head), phase 2 (fine-tune), artifact,
then the threshold and metrics from the saved artifact's Predictor (the serving path).

Run it through `python manage.py train_model` (see that command for the options).
"""

import csv
import datetime
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np

from classifier import artifact, data
from classifier.augment import augment_grayscale
from classifier.calibration import apply as apply_calibration
from classifier.calibration import cross_validated_calibration, platt_calibration
from classifier.ensemble import combine
from classifier.evaluate import score_images
from classifier.inference import Predictor
from classifier.intended_use import DEFAULT_FALSE_FLAG_RATE
from classifier.intended_use_fit import DEFAULT_POPULATION, fit_intended_use
from classifier.metrics import binary_metrics
from classifier.model import (
    DEFAULT_ALPHA,
    build_model,
    freeze_backbone,
    gradcam_layer_name,
    unfreeze_top,
)
from classifier.preprocess import equalize, preprocess_views, resized_grayscale, to_model_input
from classifier.threshold import DEFAULT_RULE, choose_threshold, cross_validated_rule


@dataclass
class TrainingConfig:
    data_dirs: tuple  # labeled folders, split together by patient
    out_dir: str
    run_dir: str | None = None  # logs and the validation split; default training-runs/<version>
    name: str = "pneumonia"
    backbone: str = "mobilenet_v2"
    alpha: float = DEFAULT_ALPHA
    weights: str | None = None
    input_size: int = 224
    head_epochs: int = 3
    finetune_epochs: int = 10
    finetune_layers: int = 100
    head_learning_rate: float = 1e-3
    finetune_learning_rate: float = 1e-4
    batch_size: int = 32
    dropout: float = 0.3
    label_smoothing: float = 0.0  # targets 0 -> s/2 and 1 -> 1 - s/2: a softer, less over-confident fit
    patience: int = 3
    validation_fraction: float = 0.15
    seed: int = 1337
    calibration_dir: str | None = None
    threshold_rule: str = DEFAULT_RULE
    test_time_zooms: tuple = (1.0, 0.9)  # views averaged per scan at evaluation and inference
    version: str | None = None
    ages: tuple = (1, 5)  # the population the model is for (intended_use.population), in whole years
    false_flag_rate: float = DEFAULT_FALSE_FLAG_RATE  # of the validation split, by the image check


def default_version(config):
    today = datetime.date.today().isoformat()
    return f"mnv2-{round(config.alpha * 100):03d}-{today}"


# --- data -------------------------------------------------------------------------------


def load_grayscale(images, size, log, what):
    """Decodes and squashes every image once: (n, size, size) uint8, before CLAHE."""
    gray = np.empty((len(images), size, size), dtype=np.uint8)
    for i, image in enumerate(images):
        gray[i] = resized_grayscale(data.read_image(image.path), size)
        if (i + 1) % 1000 == 0 or i + 1 == len(images):
            log(f"  decoded {i + 1}/{len(images)} {what} images")
    return gray


def load_model_inputs(images, size, backbone, log, what):
    """Decodes every image into its plain (zoom 1.0) view by `preprocess_views`: (n, size, size, 3)."""
    inputs = np.empty((len(images), size, size, 3), dtype=np.float32)
    for i, image in enumerate(images):
        inputs[i] = preprocess_views(data.read_image(image.path), size, backbone)[0]
        if (i + 1) % 1000 == 0 or i + 1 == len(images):
            log(f"  decoded {i + 1}/{len(images)} {what} images")
    return inputs


class AugmentedBatches(keras.utils.PyDataset):
    """Shuffled, freshly augmented training batches, reproducible from the seed."""

    def __init__(self, gray, labels, batch_size, backbone, seed):
        super().__init__()
        self.gray, self.labels = gray, labels.astype(np.float32)
        self.batch_size, self.backbone, self.seed = batch_size, backbone, seed
        self.epoch = 0
        self.order = np.random.default_rng(seed).permutation(len(gray))

    def __len__(self):
        return int(np.ceil(len(self.gray) / self.batch_size))

    def __getitem__(self, index):
        rng = np.random.default_rng((self.seed, self.epoch, index))
        chosen = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        batch = np.stack(
            [to_model_input(equalize(augment_grayscale(self.gray[i], rng)), self.backbone) for i in chosen]
        )
        return batch, self.labels[chosen]

    def on_epoch_end(self):
        self.epoch += 1
        self.order = np.random.default_rng((self.seed, self.epoch)).permutation(len(self.gray))


def class_weights(labels):
    """Weights that make both classes count equally (the split is about 1:3)."""
    counts = np.bincount(labels, minlength=2)
    return {label: len(labels) / (2.0 * counts[label]) for label in (0, 1)}


def write_split_folder(images, folder):
    """Links the images of a split into NORMAL/ and PNEUMONIA/, for evaluate_model."""
    for class_name in data.CLASS_NAMES:
        (Path(folder) / class_name).mkdir(parents=True, exist_ok=True)
    for image in images:
        link = Path(folder) / data.CLASS_NAMES[image.label] / image.path.name
        if link.exists() and link.resolve() != image.path.resolve():
            # The same name in another --data folder: named after that folder too.
            link = link.with_name(f"{image.path.parent.parent.name}-{image.path.name}")
        if not link.exists():
            link.symlink_to(image.path.resolve())


# --- training ---------------------------------------------------------------------------


def fit_phase(
    model,
    train_batches,
    validation,
    weights,
    learning_rate,
    epochs,
    patience,
    label_smoothing=0.0,
    log_csv=None,
    verbose=2,
):
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing),
        metrics=[keras.metrics.AUC(name="auc"), keras.metrics.BinaryAccuracy(name="accuracy")],
    )
    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=patience, restore_best_weights=True),
    ]
    if log_csv:
        callbacks.append(keras.callbacks.CSVLogger(str(log_csv), append=True))
    history = model.fit(
        train_batches,
        validation_data=validation,
        epochs=epochs,
        class_weight=weights,
        callbacks=callbacks,
        verbose=verbose,
    )
    return {key: [float(v) for v in values] for key, values in history.history.items()}


def split_data(config, log=print):
    """The patient-wise split, also linked into RUN_DIR/validation-split for evaluate_model.

    -> (train_images, validation_images, split summary)
    """
    config.version = config.version or default_version(config)
    config.run_dir = config.run_dir or str(Path("training-runs") / config.version)
    log(f"reading {', '.join(str(folder) for folder in config.data_dirs)}")
    images = data.list_labeled_folders(config.data_dirs)
    train_images, validation_images = data.split_by_patient(images, config.validation_fraction, config.seed)
    split = {"train": data.summarize(train_images), "validation": data.summarize(validation_images)}
    log(f"split by patient: train {split['train']}, validation {split['validation']}")
    write_split_folder(validation_images, Path(config.run_dir) / "validation-split")
    log(f"validation split linked in {Path(config.run_dir) / 'validation-split'}")
    return train_images, validation_images, split


def train(config, log=print):
    """Trains, calibrates and saves one model; -> path of the saved `.keras` file."""
    train_images, validation_images, split = split_data(config, log)
    run_dir = Path(config.run_dir)
    keras.utils.set_random_seed(config.seed)

    size = config.input_size
    train_gray = load_grayscale(train_images, size, log, "training")
    train_labels = np.array([image.label for image in train_images])
    validation_labels = np.array([image.label for image in validation_images], dtype=np.float32)
    # Early stopping watches the plain view; the test-time views come in for the metrics.
    validation = (
        load_model_inputs(validation_images, size, config.backbone, log, "validation"),
        validation_labels,
    )
    batches = AugmentedBatches(train_gray, train_labels, config.batch_size, config.backbone, config.seed)
    weights = class_weights(train_labels)
    log(f"class weights {weights}")

    model, backbone_layers = build_model(config.backbone, config.alpha, config.weights, size, config.dropout)
    log_csv = run_dir / "history.csv"

    log(f"phase 1: head only, {config.head_epochs} epochs at lr {config.head_learning_rate}")
    freeze_backbone(backbone_layers)
    history = {
        "head": fit_phase(
            model,
            batches,
            validation,
            weights,
            config.head_learning_rate,
            config.head_epochs,
            config.patience,
            config.label_smoothing,
            log_csv,
        )
    }
    log(
        f"phase 2: top {config.finetune_layers} backbone layers (BatchNorm frozen), "
        f"up to {config.finetune_epochs} epochs at lr {config.finetune_learning_rate}"
    )
    unfreeze_top(backbone_layers, config.finetune_layers)
    history["finetune"] = fit_phase(
        model,
        batches,
        validation,
        weights,
        config.finetune_learning_rate,
        config.finetune_epochs,
        config.patience,
        config.label_smoothing,
        log_csv,
    )

    metadata = {
        "training": {
            "config": {**asdict(config), "weights": config.weights and Path(config.weights).name},
            "split": split,
            "class_weights": {str(k): v for k, v in weights.items()},
            "history": history,
        },
    }
    return calibrate_and_save(model, config, train_images, validation_images, metadata, log)


def train_ensemble(config, member_paths, log=print):
    """Combines models already trained on the same data and split (classifier.ensemble) into one,
    then calibrates and saves it as `train` does; -> path of the saved `.keras` file."""
    config.version = config.version or f"mnv2-ensemble-{datetime.date.today().isoformat()}"
    train_images, validation_images, split = split_data(config, log)
    members, summaries = [], []
    for path in member_paths:
        member_metadata = artifact.verified_metadata(path)
        if member_metadata["training"]["split"] != split or member_metadata["input_size"] != config.input_size:
            raise ValueError(f"{path} was trained on another split or input size than --data gives")
        members.append(artifact.load_keras_model(path))
        summaries.append(
            {
                "version": member_metadata["version"],
                "alpha": member_metadata["alpha"],
                "sha256": member_metadata["sha256"],
                "validation_auc": member_metadata["validation"]["auc"],
                "training_config": member_metadata["training"]["config"],
            }
        )
        log(f"member {member_metadata['version']}: validation AUC {member_metadata['validation']['auc']:.4f}")
    model, gradcam_layers = combine(members, gradcam_layer_name(config.backbone))
    metadata = {
        "alpha": [summary["alpha"] for summary in summaries],
        "gradcam_layer": gradcam_layers,
        "training": {
            "config": {**asdict(config), "weights": None},
            "split": split,
            "ensemble": {"combination": "mean of the members' logits", "members": summaries},
        },
    }
    return calibrate_and_save(model, config, train_images, validation_images, metadata, log)


def population_for(config):
    low, high = config.ages
    if (low, high) == (DEFAULT_POPULATION["min_age_years"], DEFAULT_POPULATION["max_age_years"]):
        return DEFAULT_POPULATION
    return {"min_age_years": low, "max_age_years": high, "source": "train_model --ages"}


def calibrate_and_save(model, config, train_images, validation_images, metadata, log=print):
    """Saves the artifact, scores validation (and the calibration sample) through its
    Predictor, the path the worker serves with, then records the threshold and metrics,
    and fits the intended-use image check (classifier.intended_use_fit).
    """
    size, zooms = config.input_size, config.test_time_zooms
    keras_path = Path(config.out_dir) / f"{config.name}.keras"
    metadata = artifact.save_artifact(
        model,
        keras_path,
        {
            "version": config.version,
            "backbone": config.backbone,
            "alpha": config.alpha,
            "input_size": size,
            "gradcam_layer": gradcam_layer_name(config.backbone),
            **metadata,  # an ensemble's own alpha (one per member) and Grad-CAM layers
            "threshold": None,  # chosen below from the saved model's own scores
        },
        test_time_zooms=zooms,
    )
    predictor = Predictor.load(keras_path)
    _, validation_labels, validation_raw = score_images(predictor, validation_images)
    # Platt scaling is fitted on the sample the threshold is chosen on (never trained on): the
    # site's, else the validation split; the threshold is then chosen on the calibrated scale.
    if config.calibration_dir:
        calibration_images = data.list_labeled_images(config.calibration_dir)
        _, calibration_labels, calibration_raw = score_images(predictor, calibration_images)
        probability_calibration = platt_calibration(
            calibration_labels, calibration_raw, f"site calibration sample {Path(config.calibration_dir).name}"
        )
        calibration_scores = apply_calibration(probability_calibration, calibration_raw)
        threshold = choose_threshold(calibration_labels, calibration_scores, config.threshold_rule)
        patients = [image.patient_id for image in calibration_images]
        metadata["site_calibration"] = {
            **binary_metrics(calibration_labels, calibration_scores, threshold),
            "data": data.summarize(calibration_images),
            # The sample's own figures are in-sample; these say what unseen patients get.
            "cross_validated": {
                "threshold_rule": cross_validated_rule(
                    calibration_labels, calibration_scores, patients, config.threshold_rule
                ),
                "calibration": cross_validated_calibration(calibration_labels, calibration_raw, patients),
            },
        }
        threshold_source = f"site calibration sample {Path(config.calibration_dir).name}"
        validation_scores = apply_calibration(probability_calibration, validation_raw)
    else:
        probability_calibration = platt_calibration(validation_labels, validation_raw, "validation split")
        validation_scores = apply_calibration(probability_calibration, validation_raw)
        threshold = choose_threshold(validation_labels, validation_scores, config.threshold_rule)
        threshold_source = "validation split"
    metadata["probability_calibration"] = probability_calibration
    log(f"probability calibration {probability_calibration}")
    metadata["threshold"] = threshold
    metadata["threshold_rule"] = config.threshold_rule
    metadata["threshold_source"] = threshold_source
    metadata["validation"] = binary_metrics(validation_labels, validation_scores, threshold)
    log(f"threshold {threshold:.4f} ({config.threshold_rule} on the {threshold_source})")
    log(f"validation: {metadata['validation']}")
    if "site_calibration" in metadata:
        log(f"site calibration: {metadata['site_calibration']}")

    artifact.write_metadata(keras_path, metadata)
    fit_intended_use(
        keras_path, train_images, validation_images, population_for(config), config.false_flag_rate, log=log
    )
    _write_scores(Path(config.run_dir) / "validation-scores.csv", validation_images, validation_scores)
    log(f"saved {keras_path} (+ .tflite, .json); run files in {config.run_dir}")
    return keras_path


def _write_scores(path, images, scores):
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["file", "label", "patient_id", "score"])
        for image, score in zip(images, scores):
            writer.writerow([image.path.name, image.label, image.patient_id, f"{score:.6f}"])

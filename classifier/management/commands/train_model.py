"""python manage.py train_model --data DIR [DIR ...] --out DIR [--backbone NAME] [--weights PATH] [--epochs N] ..."""

from os import PathLike

from django.core.management.base import BaseCommand, CommandError

from classifier.model import DEFAULT_ALPHA
from classifier.threshold import DEFAULT_RULE

# The ImageNet weights shipped beside the checkout, for offline machines (by MobileNetV2 width).
SHARED_WEIGHTS = {
    0.35: "../shared/weights/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5",
    0.5: "../shared/weights/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.5_224_no_top.h5",
    1.0: "../shared/weights/mobilenet_v2_1.0_224_no_top.from_tfslim_npy.weights.h5",
}


class Command(BaseCommand):
    help = (
        "Train the pneumonia classifier on DIR/NORMAL and DIR/PNEUMONIA (split by patient), "
        "choose its threshold, and save NAME.keras + .tflite + .json in --out."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--data",
            required=True,
            nargs="+",
            action="extend",
            help="folder(s) with NORMAL/ and PNEUMONIA/ (and optionally manifest.csv naming each file's "
            "patient, as export_reviewed writes); several are split together by patient",
        )
        parser.add_argument("--out", required=True, help="folder for the model files")
        parser.add_argument("--name", default="pneumonia", help="file name stem (default pneumonia)")
        parser.add_argument("--run-dir", help="logs + validation split links (default training-runs/VERSION)")
        parser.add_argument("--backbone", default="mobilenet_v2")
        parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA, help="MobileNetV2 width")
        parser.add_argument(
            "--weights",
            help="backbone weights: a local .h5 / .weights.h5 file, 'imagenet' (online), or "
            "'none'; default: the ../shared/weights file for --alpha",
        )
        parser.add_argument("--input-size", type=int, default=224)
        parser.add_argument("--epochs", type=int, default=10, help="phase 2 (fine-tune) epochs, at most")
        parser.add_argument("--head-epochs", type=int, default=3, help="phase 1 (frozen backbone) epochs")
        parser.add_argument("--finetune-layers", type=int, default=100, help="top backbone layers to unfreeze")
        parser.add_argument("--batch-size", type=int, default=32)
        parser.add_argument(
            "--label-smoothing", type=float, default=0.0, help="binary label smoothing (default 0: none)"
        )
        parser.add_argument("--patience", type=int, default=3, help="early stopping on validation AUC")
        parser.add_argument("--validation-fraction", type=float, default=0.15)
        parser.add_argument("--seed", type=int, default=1337)
        parser.add_argument(
            "--calibration",
            help="a site's labeled sample (NORMAL/, PNEUMONIA/) that sets the "
            "threshold; without it the validation split does",
        )
        parser.add_argument("--rule", default=DEFAULT_RULE, help="threshold rule (classifier/threshold.py)")
        parser.add_argument(
            "--tta-zooms",
            default="1.0,0.9",
            help="comma-separated zooms of the test-time views averaged per scan, e.g. 1.0,0.9",
        )
        parser.add_argument(
            "--model-version", help="version name (default mnv2-<alpha*100>-<date>, or mnv2-ensemble-<date>)"
        )
        parser.add_argument(
            "--ages",
            default="1-5",
            help="the patients' ages (whole years, MIN-MAX) the model is for; default 1-5, the shared data's",
        )
        parser.add_argument(
            "--false-flag-rate",
            type=float,
            default=0.02,
            help="share of the validation split the intended-use image check may flag (default 0.02)",
        )
        parser.add_argument(
            "--ensemble-of",
            nargs="+",
            metavar="MODEL",
            help="instead of training: combine these .keras models, trained on the same --data and split, "
            "into one (the mean of their logits), then calibrate and save it as training does",
        )
        parser.add_argument(
            "--split-only",
            action="store_true",
            help="only link the patient-wise validation split into RUN_DIR/validation-split "
            "(to evaluate a trained model on it), then stop",
        )

    def handle(self, *args, **options):
        from classifier.train import TrainingConfig, split_data, train, train_ensemble

        ages = parse_ages(options["ages"])

        weights = options["weights"] or SHARED_WEIGHTS.get(options["alpha"])
        if weights is None:
            raise CommandError(f"no shared weights for alpha {options['alpha']}; pass --weights")
        config = TrainingConfig(
            data_dirs=data_folders(options["data"]),
            out_dir=options["out"],
            run_dir=options["run_dir"],
            name=options["name"],
            backbone=options["backbone"],
            alpha=options["alpha"],
            weights=None if weights == "none" else weights,
            input_size=options["input_size"],
            head_epochs=options["head_epochs"],
            finetune_epochs=options["epochs"],
            finetune_layers=options["finetune_layers"],
            batch_size=options["batch_size"],
            label_smoothing=options["label_smoothing"],
            patience=options["patience"],
            validation_fraction=options["validation_fraction"],
            seed=options["seed"],
            calibration_dir=options["calibration"],
            threshold_rule=options["rule"],
            test_time_zooms=tuple(float(zoom) for zoom in options["tta_zooms"].split(",")),
            version=options["model_version"],
            ages=ages,
            false_flag_rate=options["false_flag_rate"],
        )
        if options["split_only"]:
            split_data(config, log=self.stdout.write)
            return
        if options["ensemble_of"]:
            path = train_ensemble(config, options["ensemble_of"], log=self.stdout.write)
        else:
            path = train(config, log=self.stdout.write)
        self.stdout.write(self.style.SUCCESS(f"trained {path}"))


def data_folders(value):
    """--data's folders; call_command passes one folder as it was given, not in a list."""
    return (str(value),) if isinstance(value, str | PathLike) else tuple(str(folder) for folder in value)


def parse_ages(text):
    """'1-5' -> (1, 5); CommandError for anything else."""
    try:
        low, high = (int(part) for part in text.split("-"))
    except ValueError:
        raise CommandError(f"--ages {text!r}: expected MIN-MAX in whole years, e.g. 1-5") from None
    if not 0 <= low <= high:
        raise CommandError(f"--ages {text!r}: MIN must be at least 0 and at most MAX")
    return low, high

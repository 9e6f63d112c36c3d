"""python manage.py evaluate_model --data DIR [--model PATH] --json FILE [--plots DIR]"""

import copy
import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Evaluate a model on DIR/NORMAL and DIR/PNEUMONIA (any-size PNG/JPEG) at its stored "
        "threshold: prints a table, writes the metrics JSON (with ece and brier) and, with --plots, ROC, "
        "confusion-matrix and reliability PNGs and Grad-CAM overlays of the scans it got most wrong."
    )

    def add_arguments(self, parser):
        parser.add_argument("--data", required=True, help="folder with NORMAL/ and PNEUMONIA/")
        parser.add_argument("--model", help="a .keras artifact (default: the active model version)")
        parser.add_argument("--json", required=True, help="where to write the metrics")
        parser.add_argument(
            "--uncalibrated",
            action="store_true",
            help="the network's own probabilities, without the model's probability calibration "
            "(its threshold mapped back: the same decisions)",
        )
        parser.add_argument(
            "--plots",
            help="folder for roc_curve.png, confusion_matrix.png, reliability.png and gradcam/*.png overlays",
        )

    def handle(self, *args, **options):
        from classifier.artifact import ArtifactError
        from classifier.evaluate import evaluate_folder, format_table
        from classifier.inference import Predictor
        from classifier.models import ModelVersion
        from classifier.registry import get_predictor

        try:
            if options["model"]:
                predictor, name = Predictor.load(options["model"]), options["model"]
            else:
                version = ModelVersion.active()
                if version is None:
                    raise CommandError("no model version is active; pass --model PATH")
                predictor, name = get_predictor(version), version.version
        except ArtifactError as error:
            raise CommandError(str(error)) from error
        if options["uncalibrated"] and predictor.calibration:
            from classifier.calibration import uncalibrated

            predictor = copy.copy(predictor)  # shares the loaded model
            predictor.threshold = uncalibrated(predictor.calibration, predictor.threshold)
            predictor.calibration = None
            name += " (uncalibrated)"
        self.stdout.write(f"evaluating {name} (threshold {predictor.threshold:.4f}) on {options['data']}")
        try:
            metrics = evaluate_folder(
                predictor,
                options["data"],
                plots_dir=options["plots"],
                log=lambda message: self.stdout.write(message),
            )
        except FileNotFoundError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(format_table(metrics))
        Path(options["json"]).parent.mkdir(parents=True, exist_ok=True)
        Path(options["json"]).write_text(json.dumps(metrics, indent=2) + "\n")
        self.stdout.write(self.style.SUCCESS(f"wrote {options['json']}"))

"""python manage.py calibrate_probabilities --model PATH --data DIR"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Fit Platt scaling of an artifact's probabilities on a labeled sample it was not trained on "
        "(DIR/NORMAL, DIR/PNEUMONIA) and store it in the artifact's metadata, with the threshold and "
        "the recorded metrics' thresholds mapped onto the calibrated scale (the same decisions). "
        "The model files stay as they are; a version registered before keeps its raw scale."
    )

    def add_arguments(self, parser):
        parser.add_argument("--model", required=True, help="the .keras artifact")
        parser.add_argument("--data", required=True, help="labeled sample (NORMAL/, PNEUMONIA/), never trained on")

    def handle(self, *args, **options):
        from classifier import artifact
        from classifier.calibration import (
            apply,
            brier_score,
            calibrated_metadata,
            cross_validated_calibration,
            expected_calibration_error,
            platt_calibration,
        )
        from classifier.evaluate import score_folder
        from classifier.inference import Predictor

        try:
            predictor = Predictor.load(options["model"])
            images, labels, raw = score_folder(predictor, options["data"], calibrated=False)
            calibration = platt_calibration(labels, raw, f"{Path(options['data']).resolve().name} sample")
        except (artifact.ArtifactError, FileNotFoundError, ValueError) as error:
            raise CommandError(str(error)) from error
        calibrated = apply(calibration, raw)
        metadata = calibrated_metadata(artifact.read_metadata(options["model"]), calibration)
        artifact.write_metadata(options["model"], metadata)
        self.stdout.write(
            f"on {len(labels)} images: ECE {expected_calibration_error(labels, raw):.4f} -> "
            f"{expected_calibration_error(labels, calibrated):.4f}, Brier {brier_score(labels, raw):.4f} -> "
            f"{brier_score(labels, calibrated):.4f} (in-sample)"
        )
        unseen = cross_validated_calibration(labels, raw, [image.patient_id for image in images])
        self.stdout.write(
            f"5-fold by patient (each image calibrated by a fit on the others), mean of {unseen['repeats']} "
            f"shuffles: ECE {unseen['ece']:.4f} (sd {unseen['ece_sd']:.4f}), Brier {unseen['brier']:.4f}"
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"calibration a={calibration['a']:.4f} b={calibration['b']:.4f}; threshold now {metadata['threshold']:.4f}"
            )
        )

"""python manage.py fit_intended_use --model PATH --data TRAIN_DIR [--false-flag-rate 0.02] [--ages 1-5]"""

from django.core.management.base import BaseCommand, CommandError

from classifier.management.commands.train_model import parse_ages


class Command(BaseCommand):
    help = (
        "Add the intended-use check to an existing artifact: fits the image check's feature statistics "
        "on the training part of the artifact's own patient-wise split of TRAIN_DIR, sets its threshold "
        "on the validation part, and writes NAME.features.npz and the metadata (its sha256, the "
        "threshold, the declared population). The model files stay as they are."
    )

    def add_arguments(self, parser):
        parser.add_argument("--model", required=True, help="the .keras artifact")
        parser.add_argument("--data", required=True, help="the folder the model was trained on (NORMAL/, PNEUMONIA/)")
        parser.add_argument("--false-flag-rate", type=float, default=0.02, help="share of validation flagged")
        parser.add_argument("--ages", help="ages the model is for, MIN-MAX years (default: as recorded, else 1-5)")

    def handle(self, *args, **options):
        from classifier import artifact
        from classifier.intended_use_fit import fit_intended_use, split_for

        if not 0 < options["false_flag_rate"] < 1:
            raise CommandError("--false-flag-rate must be between 0 and 1")
        population = None
        if options["ages"]:
            low, high = parse_ages(options["ages"])
            population = {"min_age_years": low, "max_age_years": high, "source": "fit_intended_use --ages"}
        try:
            metadata = artifact.verified_metadata(options["model"])
            train_images, validation_images = split_for(metadata, options["data"])
        except (artifact.ArtifactError, FileNotFoundError) as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"fitting on {len(train_images)} training images, threshold on {len(validation_images)}")
        metadata = fit_intended_use(
            options["model"],
            train_images,
            validation_images,
            population,
            options["false_flag_rate"],
            log=self.stdout.write,
        )
        check = metadata["intended_use"]["image_check"]
        self.stdout.write(
            self.style.SUCCESS(
                f"image check: threshold {check['threshold']:.3f}, {check['validation_flagged']:.1%} of validation "
                f"flagged; population {metadata['intended_use']['population']}"
            )
        )

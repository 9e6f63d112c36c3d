"""python manage.py calibrate_model --data DIR [--rule RULE] [--site NAME] [--base VERSION]"""

from django.core.management.base import BaseCommand, CommandError

from classifier.threshold import DEFAULT_RULE


class Command(BaseCommand):
    help = (
        "Set a site's decision threshold from its labeled sample (DIR/NORMAL, DIR/PNEUMONIA): "
        "records a new, inactive model version with the same weights, the new threshold and "
        "the sample's metrics, for an admin to activate."
    )

    def add_arguments(self, parser):
        parser.add_argument("--data", required=True, help="folder with NORMAL/ and PNEUMONIA/")
        parser.add_argument(
            "--rule",
            default=DEFAULT_RULE,
            help=f"'sensitivity>=X' (highest specificity at that sensitivity) or 'youden' (default {DEFAULT_RULE})",
        )
        parser.add_argument("--site", help="site name for the version (default: the folder's name)")
        parser.add_argument("--base", help="version to calibrate (default: the active one)")
        parser.add_argument("--activate", action="store_true", help="activate the new version")

    def handle(self, *args, **options):
        from classifier.evaluate import format_table
        from classifier.models import ModelVersion
        from classifier.registry import calibrate_model

        base = None
        if options["base"]:
            base = ModelVersion.objects.filter(version=options["base"]).first()
            if base is None:
                raise CommandError(f"no model version {options['base']!r}")
        try:
            version = calibrate_model(
                options["data"],
                rule=options["rule"],
                base=base,
                site=options["site"],
                log=lambda message: self.stdout.write(message),
            )
        except (ValueError, FileNotFoundError) as error:
            raise CommandError(str(error)) from error
        if options["activate"]:
            from radiology.actions.registry import activate_model_version  # audited, like an admin's activation

            activate_model_version(None, version)
        self.stdout.write(format_table(version.evaluation["site_calibration"]))
        state = "active" if version.is_active else "inactive; an admin can activate it"
        self.stdout.write(
            self.style.SUCCESS(f"recorded {version.version} (threshold {version.threshold:.4f}, {state})")
        )

"""python manage.py register_model PATH [--activate]"""

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Record a .keras artifact (sha256 and metadata checked) as a model version."

    def add_arguments(self, parser):
        parser.add_argument("path", help="the .keras file; its .json and .tflite lie beside it")
        parser.add_argument("--activate", action="store_true", help="make it the only active version")

    def handle(self, *args, **options):
        from django.core.exceptions import ValidationError

        from classifier.artifact import ArtifactError
        from classifier.registry import register_model
        from radiology.actions.registry import activate_model_version  # audited, like an admin's activation

        try:
            version = register_model(options["path"])
            if options["activate"]:
                activate_model_version(None, version)
        except (ArtifactError, ValidationError) as error:
            raise CommandError(" ".join(getattr(error, "messages", [str(error)]))) from error
        state = "active" if version.is_active else "inactive"
        self.stdout.write(
            self.style.SUCCESS(
                f"registered {version.version} ({state}, threshold {version.threshold:.4f}, "
                f"sha256 {version.sha256[:12]}...)"
            )
        )

"""python manage.py register_model PATH [--activate]"""

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Record a .keras artifact (sha256 and metadata checked) as a model version."

    def add_arguments(self, parser):
        parser.add_argument("path", help="the .keras file; its .json and .tflite lie beside it")
        parser.add_argument("--activate", action="store_true", help="make it the only active version")

    def handle(self, *args, **options):
        from classifier.artifact import ArtifactError
        from classifier.registry import register_model

        try:
            version = register_model(options["path"], activate=options["activate"])
        except ArtifactError as error:
            raise CommandError(str(error)) from error
        state = "active" if version.is_active else "inactive"
        self.stdout.write(self.style.SUCCESS(
            f"registered {version.version} ({state}, threshold {version.threshold:.4f}, "
            f"sha256 {version.sha256[:12]}...)"
        ))

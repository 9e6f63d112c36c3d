"""Register and activate the bundled model unless a model version is already active (safe on every start)."""

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Register and activate the bundled model if no model version is active."

    def handle(self, *args, **options):
        from classifier.registry import ensure_bundled_model

        version = ensure_bundled_model()
        self.stdout.write(f"Active model: {version.version} (threshold {version.threshold:.3f})")

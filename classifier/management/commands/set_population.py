"""python manage.py set_population --ages MIN-MAX --reason TEXT [--base VERSION] [--activate]"""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from classifier.management.commands.train_model import parse_ages


class Command(BaseCommand):
    help = (
        "Declare the patients' ages a model version is used for (its intended-use population): records a "
        "new, inactive version with the same files and that population (audited), for an admin to activate. "
        "Widen it only after validating the model on the site's own patients of those ages."
    )

    def add_arguments(self, parser):
        parser.add_argument("--ages", required=True, help="MIN-MAX in whole years")
        parser.add_argument("--reason", required=True, help="why: the site's validation behind it")
        parser.add_argument("--base", help="version to start from (default: the active one)")
        parser.add_argument("--activate", action="store_true", help="activate the new version")

    def handle(self, *args, **options):
        from classifier.models import ModelVersion
        from radiology.actions.registry import activate_model_version, record_population

        low, high = parse_ages(options["ages"])
        base = (
            ModelVersion.objects.filter(version=options["base"]).first() if options["base"] else ModelVersion.active()
        )
        if base is None:
            raise CommandError(
                "no such model version" if options["base"] else "no model version is active; pass --base"
            )
        try:
            version = record_population(None, base, low, high, options["reason"])
            if options["activate"]:
                activate_model_version(None, version)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from error
        state = "active" if version.is_active else "inactive; an admin can activate it"
        self.stdout.write(self.style.SUCCESS(f"recorded {version.version} (ages {low} to {high}, {state})"))

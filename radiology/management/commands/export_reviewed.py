"""python manage.py export_reviewed --out DIR [--since YYYY-MM-DD]"""

import datetime

from django.core.management.base import BaseCommand, CommandError

from radiology.actions.export import export_reviewed


def day(value):
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--since must be a date as YYYY-MM-DD, not {value!r}") from None


class Command(BaseCommand):
    help = (
        "Write the reviewed scans as DIR/NORMAL and DIR/PNEUMONIA PNGs by the doctors' final label, with "
        "DIR/manifest.csv naming each file's patient by a keyed hash (no names, MRNs or dates): "
        "material for train_model --data. Audited."
    )

    def add_arguments(self, parser):
        parser.add_argument("--out", required=True, help="a new (or empty) folder")
        parser.add_argument("--since", help="only scans whose latest review is on or after this day (YYYY-MM-DD)")

    def handle(self, *args, out, since=None, **options):
        try:
            result = export_reviewed(out, day(since) if since else None)
        except ValueError as error:
            raise CommandError(str(error)) from None
        counts = ", ".join(f"{count} {label}" for label, count in result.counts.items())
        self.stdout.write(self.style.SUCCESS(f"exported {result.images} scans to {result.folder} ({counts})"))
        if result.skipped:
            self.stderr.write(
                f"skipped {len(result.skipped)} scans whose stored image cannot be read: {result.skipped}"
            )

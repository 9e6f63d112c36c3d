"""List and remove stored files that no row names: `python manage.py cleanup_orphans [--dry-run]`."""

from django.core.management.base import BaseCommand, CommandError

from radiology.actions.files import orphan_files, remove_orphan_files


class Command(BaseCommand):
    help = "Remove files under MEDIA_ROOT that no scan or prediction names, older than an hour (--dry-run: list only)."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="List the orphan files; remove nothing.")
        parser.add_argument(
            "--older-than-minutes",
            type=int,
            default=60,
            help="Leave younger files alone: their transaction may still be open (default 60).",
        )

    def handle(self, *args, dry_run, older_than_minutes, **options):
        if older_than_minutes < 0:
            raise CommandError("--older-than-minutes cannot be negative.")
        older_than_s = older_than_minutes * 60
        orphans = orphan_files(older_than_s) if dry_run else remove_orphan_files(older_than_s)
        for orphan in orphans:
            self.stdout.write(f"{orphan.name}\t{orphan.size} bytes\t{orphan.age_s / 3600:.1f} h old")
        total = sum(orphan.size for orphan in orphans)
        verb = "would be removed (dry run)" if dry_run else "removed"
        self.stdout.write(f"{len(orphans)} orphan files, {total} bytes, {verb}.")

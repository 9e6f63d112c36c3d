"""Print a user's API token: `python manage.py issue_token USERNAME [--replace]`."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from radiology.actions import tokens


class Command(BaseCommand):
    help = "Print USERNAME's API token, creating one if they have none (--replace: a new one; the old stops working)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--replace", action="store_true", help="Issue a new token, revoking the current one.")

    def handle(self, *args, username, replace, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user is called {username!r}.")
        if not user.is_active:
            raise CommandError(f"{username} is not active: an inactive user's token would not work.")
        # The command line acts as no one in particular: the audit records a system action.
        self.stdout.write(tokens.issue_api_token(None, user, replace=replace).key)

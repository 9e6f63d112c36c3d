"""Print a new API token for a user: `python manage.py issue_token USERNAME [--name NAME] [--replace]`."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from radiology.actions import tokens


class Command(BaseCommand):
    help = (
        "Print a new API token for USERNAME (only its hash is stored: this is the one time it is shown). "
        "A token of theirs with the same --name stops working; --replace revokes all their others."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="command line", help="What the token is for (default: command line).")
        parser.add_argument("--replace", action="store_true", help="Also revoke every other token of this user.")

    def handle(self, *args, username, name, replace, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user is called {username!r}.")
        if not user.is_active:
            raise CommandError(f"{username} is not active: an inactive user's token would not work.")
        # The command line acts as no one in particular: the audit records a system action.
        self.stdout.write(tokens.issue_api_token(None, user, name=name, replace=replace).key)

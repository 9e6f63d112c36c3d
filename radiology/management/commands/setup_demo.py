"""Make a fresh installation usable: one demo user per role and the bundled model active. Idempotent."""

import json
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

from radiology.permissions import ADMIN, HUMAN_ROLES

CREDENTIALS_FILE = settings.VAR_DIR / "demo-credentials.json"


class Command(BaseCommand):
    help = "Create the demo users radiographer, doctor and admin (passwords printed) and activate the bundled model."

    def handle(self, *args, **options):
        from classifier.registry import ensure_bundled_model

        credentials = json.loads(CREDENTIALS_FILE.read_text()) if CREDENTIALS_FILE.exists() else {}
        User = get_user_model()
        for role in HUMAN_ROLES:
            user, created = User.objects.get_or_create(username=role)
            if created or role not in credentials:
                credentials[role] = secrets.token_urlsafe(9)
                user.set_password(credentials[role])
            user.is_staff = role == ADMIN  # the admin manages users in Django's admin pages
            user.save()
            user.groups.set([Group.objects.get(name=role)])
        CREDENTIALS_FILE.parent.mkdir(parents=True, exist_ok=True)
        CREDENTIALS_FILE.write_text(json.dumps(credentials, indent=2))
        CREDENTIALS_FILE.chmod(0o600)

        version = ensure_bundled_model()
        self.stdout.write(f"Active model: {version.version} (threshold {version.threshold:.3f})")
        self.stdout.write("Demo users (for demonstration only):")
        for role in HUMAN_ROLES:
            self.stdout.write(f"  {role:<13} password: {credentials[role]}")

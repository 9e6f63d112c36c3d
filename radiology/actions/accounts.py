"""User accounts: the admin role resets a password by sending the user a link, never by setting it."""

from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from radiology.actions.audit import audit


def send_password_reset_link(actor, user, request):
    """Email the user a one-time link (Django's reset token: it stops working once the password
    changes) to choose their own password. The audit records who sent it, not the link."""
    if not user.email:
        raise ValidationError(f"{user.get_username()} has no email address: a superuser must set one first.")
    if not user.is_active:
        raise ValidationError(f"{user.get_username()} is not active.")
    path = reverse(
        "password_reset_confirm",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": default_token_generator.make_token(user),
        },
    )
    body = render_to_string(
        "registration/password_reset_link_email.txt", {"user": user, "link": request.build_absolute_uri(path)}
    )
    with transaction.atomic():
        audit(actor, "user.password_reset_sent", user)
        transaction.on_commit(lambda: send_mail("Choose your PneumoScan password", body, None, [user.email]))

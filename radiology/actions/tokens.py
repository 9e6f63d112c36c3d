"""API tokens: issued and revoked by actions, audited without the key."""

from django.core.exceptions import PermissionDenied
from django.db import transaction
from rest_framework.authtoken.models import Token

from radiology.actions.audit import audit
from radiology.permissions import is_service_account


def may_issue_for(actor, user):
    """A token acts as its user: a caller gets one for itself, or for an integration service
    account, never for another person (not even a superuser). `actor` None is the command line."""
    return actor is None or actor.pk == user.pk or is_service_account(user)


def issue_api_token(actor, user, replace=False):
    """The user's API token: the existing one, or a new one (always new with `replace`, which
    revokes the old). The audit names the user, never the key."""
    if not may_issue_for(actor, user):
        raise PermissionDenied("Tokens are issued only for your own account or for integration service accounts.")
    with transaction.atomic():
        existing = Token.objects.select_for_update().filter(user=user).first()
        if existing and not replace:
            return existing
        if existing:
            existing.delete()
        token = Token.objects.create(user=user)
        audit(actor, "api_token.issued", user, after={"replaced": existing is not None})
    return token


def revoke_api_token(actor, user) -> bool:
    """Delete the user's API token; False when they had none."""
    with transaction.atomic():
        deleted, _ = Token.objects.filter(user=user).delete()
        if deleted:
            audit(actor, "api_token.revoked", user)
    return bool(deleted)

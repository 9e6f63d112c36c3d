"""API tokens: issued, listed and revoked by actions, audited without the key.

A key is shown once, by the action that issues it; the database keeps only its SHA-256.
"""

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from radiology.actions.audit import audit
from radiology.models import ApiToken
from radiology.permissions import is_service_account

DEFAULT_NAME = "api"


def key_hash(key):
    return hashlib.sha256(key.encode()).hexdigest()


def is_tokens_only_service_account(user):
    """An integration account without a password: it signs in with tokens alone. (A person's
    account moved into the integration group keeps its password, so no one else gets its tokens.)"""
    return is_service_account(user) and not user.has_usable_password()


def may_issue_for(actor, user):
    """A token acts as its user: a caller gets one for itself, or for an integration service
    account, never for another person (not even a superuser). `actor` None is the command line."""
    return actor is None or actor.pk == user.pk or is_tokens_only_service_account(user)


def issue_api_token(actor, user, name=DEFAULT_NAME, replace=False):
    """A new token for the user, valid for API_TOKEN_DAYS; the returned token's `key` is the only
    copy of the key. A token of the same name is revoked; with `replace`, every other one too."""
    if not may_issue_for(actor, user):
        raise PermissionDenied(
            "Tokens are issued only for your own account or for integration service accounts (which have no password)."
        )
    key = secrets.token_urlsafe(32)
    with transaction.atomic():
        others = ApiToken.objects.select_for_update().filter(user=user)
        revoked = list((others if replace else others.filter(name=name)).values_list("pk", flat=True))
        ApiToken.objects.filter(pk__in=revoked).delete()
        token = ApiToken.objects.create(
            user=user,
            issued_by=actor,
            name=name,
            key_hash=key_hash(key),
            prefix=key[:8],
            expires_at=timezone.now() + timedelta(days=settings.API_TOKEN_DAYS),
        )
        audit(actor, "api_token.issued", user, after={"token": token.pk, "name": name, "revoked": revoked})
    token.key = key
    return token


def authenticate_key(key):
    """The unexpired token with this key, with its user; None otherwise. A token someone else was
    given for a service account works only while that account is still one (no person's role, no
    password): an account turned into a person's afterwards must not inherit it."""
    tokens = ApiToken.objects.select_related("user").filter(key_hash=key_hash(key), expires_at__gt=timezone.now())
    token = tokens.first()
    issued_by_another = token is not None and token.issued_by_id not in (None, token.user_id)
    if issued_by_another and not is_tokens_only_service_account(token.user):
        return None
    return token


def revoke_api_token(actor, token):
    with transaction.atomic():
        token_id = token.pk
        token.delete()
        audit(actor, "api_token.revoked", token.user, after={"token": token_id, "name": token.name})


def revoke_all_tokens(user, reason):
    """Every token of the user stops working (their password changed, or they were deactivated)."""
    revoked = list(ApiToken.objects.filter(user=user).values_list("pk", flat=True))
    if revoked:
        ApiToken.objects.filter(pk__in=revoked).delete()
        audit(None, "api_token.revoked", user, after={"tokens": revoked, "reason": reason})

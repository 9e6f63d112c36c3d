"""Audit events for sign-ins and sign-outs, fed by django.contrib.auth's signals (connected in apps.py).

Failed attempts record the username that was tried (never the password) and the client address,
so a run of guesses against one account shows in the trail even when the account does not exist.
"""

from radiology.actions.audit import audit
from radiology.client_address import client_address


def audit_login(sender, request, user, **kwargs):
    audit(user, "auth.login", user, after={"ip": client_address(request)})


def audit_logout(sender, request, user, **kwargs):
    if user is not None:  # logging out without a session has no one to record
        audit(user, "auth.logout", user, after={"ip": client_address(request)})


def audit_login_failed(sender, credentials, request=None, **kwargs):
    # Django has already masked secrets in `credentials`; only the username is kept.
    audit(
        None,
        "auth.login_failed",
        None,
        after={"username": str(credentials.get("username", ""))[:150], "ip": client_address(request)},
    )


def revoke_tokens_on_credential_change(sender, instance, raw=False, update_fields=None, **kwargs):
    """A user's API tokens stop working when their password changes or they are deactivated:
    a token must not outlive the credentials or the account it was issued on."""
    from radiology.actions.tokens import revoke_all_tokens

    if raw or instance.pk is None or (update_fields is not None and not {"password", "is_active"} & set(update_fields)):
        return
    before = sender.objects.filter(pk=instance.pk).values("password", "is_active").first()
    if before is None:
        return
    if before["password"] != instance.password:
        revoke_all_tokens(instance, "password changed")
    elif before["is_active"] and not instance.is_active:
        revoke_all_tokens(instance, "deactivated")

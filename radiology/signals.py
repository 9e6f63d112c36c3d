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

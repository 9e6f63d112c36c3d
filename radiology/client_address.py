"""The address of the client behind a request: one rule for the API rate limits, the login
lockout (django-axes) and the audit trail.

With TRUSTED_PROXY_COUNT = 0 (no proxy in front) the connection's address is the client's and
any X-Forwarded-For header is ignored: anyone can write one. Behind N trusted proxies, each of
which appends the address it received the request from, the client is the Nth entry from the
end; entries further left were written by the client and are never believed.
"""

import ipaddress

from django.conf import settings


def client_address(request) -> str:
    remote = request.META.get("REMOTE_ADDR", "") if request is not None else ""
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies <= 0:
        return remote
    forwarded = [entry.strip() for entry in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if entry.strip()]
    if not forwarded:
        return remote
    candidate = forwarded[-min(proxies, len(forwarded))]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:  # a misconfigured proxy: better the proxy's address than a forged string
        return remote

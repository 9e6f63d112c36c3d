"""Browser sessions end on their own: after SESSION_IDLE_MINUTES without the person doing
anything, and SESSION_MAX_HOURS after signing in, whatever they do (ward workstations are shared).

Only a person's requests count as activity: views marked `passive` (a page's background polling,
the session's own status) do not keep a session alive. API calls with a token carry no session
and are not concerned.
"""

import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import SESSION_KEY, logout

SIGNED_IN_AT = "signed_in_at"  # epoch seconds, in the session
ACTIVE_AT = "active_at"


def now() -> float:
    return time.time()


def passive(view):
    """Mark a view whose requests are not a person's activity (background polling)."""
    view.session_passive = True
    return view


def seconds_left(session, at: float) -> dict:
    """Seconds until the idle limit and until the absolute limit of a signed-in session."""
    return {
        "idle": settings.SESSION_IDLE_MINUTES * 60 - (at - session.get(ACTIVE_AT, at)),
        "absolute": settings.SESSION_MAX_HOURS * 3600 - (at - session.get(SIGNED_IN_AT, at)),
    }


def expiry_reason(session, at: float) -> str | None:
    left = seconds_left(session, at)
    if left["absolute"] <= 0:
        return f"You were signed out: a session lasts at most {settings.SESSION_MAX_HOURS} hours. Please sign in again."
    if left["idle"] <= 0:
        return (
            f"You were signed out after {settings.SESSION_IDLE_MINUTES} minutes without activity. Please sign in again."
        )
    return None


class SessionLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        session = getattr(request, "session", None)
        if session is not None and SESSION_KEY in session and SIGNED_IN_AT not in session:
            # Signed in by this request (Django's login keeps no time of its own).
            session[SIGNED_IN_AT] = session[ACTIVE_AT] = now()
        return response

    def process_view(self, request, view, args, kwargs):
        if SESSION_KEY not in request.session or SIGNED_IN_AT not in request.session:
            return None
        at = now()
        reason = expiry_reason(request.session, at)
        if reason:
            logout(request)  # the view then sees an anonymous visitor: a page sends them to sign in
            messages.info(request, reason)
        elif not getattr(view, "session_passive", False):
            request.session[ACTIVE_AT] = at
        return None

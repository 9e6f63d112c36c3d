"""The session's own endpoints for the page's timeout warning (static/js/session.js)."""

from django.contrib.auth import SESSION_KEY
from django.http import JsonResponse
from django.views.decorators.http import require_GET, require_POST

from radiology import session_limits


def status_of(request):
    if SESSION_KEY not in request.session:  # never signed in, or just signed out by the limits
        return JsonResponse({"signed_in": False}, status=401)
    left = session_limits.seconds_left(request.session, session_limits.now())
    return JsonResponse(
        {
            "signed_in": True,
            "idle_seconds_left": max(0, int(left["idle"])),
            "session_seconds_left": max(0, int(left["absolute"])),
        }
    )


@session_limits.passive
@require_GET
def session_status(request):
    """How long the session has left; asking does not count as activity."""
    return status_of(request)


@require_POST
def session_keep_alive(request):
    """The person chose to stay signed in: the middleware has counted this request as activity."""
    return status_of(request)

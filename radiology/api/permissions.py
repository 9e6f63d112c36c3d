"""DRF permission classes that ask radiology.permissions: the role rules live there, for pages and API alike."""

from rest_framework.permissions import BasePermission

from radiology.permissions import can


class RoleActionPermission(BasePermission):
    """Allows a request when the user may do one of the actions the view names for its current action.

    A view declares `required_actions = {"list": ("view_patients",), "create": ("manage_patients",)}`,
    keyed by HTTP method ("get", "post") for a plain APIView. A view action missing from that map
    is refused (fail closed). An HTTP method the view does not handle has no action: it passes
    here so that the client gets the 405 it deserves.
    """

    message = "Your role does not allow this."

    def has_permission(self, request, view):
        action = view_action(view, request)
        if action is None:
            return True
        return any(can(request.user, needed) for needed in getattr(view, "required_actions", {}).get(action, ()))


def view_action(view, request):
    """A viewset's action, or a plain APIView's handler name; None when the method has no handler."""
    if request.method == "OPTIONS":
        return None  # no metadata is served (DEFAULT_METADATA_CLASS is None): a 405 follows
    if hasattr(view, "action"):
        return view.action
    method = request.method.lower()
    return method if hasattr(view, method) else None

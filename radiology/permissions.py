"""Roles and what each may do: the one place pages and the API both ask.

A role is a Django group; an action is a named capability backed by one Django permission,
so an administrator can also grant a single capability to a person outside the roles. Three roles
are for people and use the pages; `integration` is for service accounts (PACS bridges, scripts)
that use the API only.
"""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied

RADIOGRAPHER, DOCTOR, ADMIN, INTEGRATION = "radiographer", "doctor", "admin", "integration"
HUMAN_ROLES = (RADIOGRAPHER, DOCTOR, ADMIN)
ROLES = (*HUMAN_ROLES, INTEGRATION)

# action -> the permission that grants it
ACTIONS = {
    "manage_patients": "radiology.add_patient",
    "view_patients": "radiology.view_patient",
    "upload_scans": "radiology.add_scan",
    "view_scan_status": "radiology.view_scan",
    "view_predictions": "radiology.view_prediction",
    "view_final_labels": "radiology.view_review",
    "view_review_notes": "radiology.view_review_note",
    "view_scan_images": "radiology.view_scan_image",
    "view_heatmaps": "radiology.view_scan_heatmap",
    "review_scans": "radiology.add_review",
    "view_patient_history": "radiology.view_patient_history",
    "view_dashboard": "radiology.view_dashboard",
    "requeue_scans": "radiology.requeue_scan",
    "view_model_versions": "classifier.view_modelversion",
    "activate_model_versions": "classifier.activate_modelversion",
    "manage_users": "auth.change_user",
    "manage_tokens": "radiology.change_apitoken",
    "view_audit": "radiology.view_auditevent",
    "view_pacs_status": "radiology.view_pacs_status",
}
ROLE_ACTIONS = {
    RADIOGRAPHER: ["manage_patients", "view_patients", "upload_scans", "view_scan_status", "view_scan_images"],
    DOCTOR: [
        "view_patients",
        "view_scan_images",
        "view_heatmaps",
        "review_scans",
        "view_patient_history",
        "view_predictions",
        "view_final_labels",
        "view_review_notes",
    ],
    ADMIN: [
        "view_dashboard",
        "requeue_scans",
        "view_scan_status",
        "view_model_versions",
        "activate_model_versions",
        "manage_users",
        "manage_tokens",
        "view_pacs_status",
        "view_audit",
    ],
    INTEGRATION: [
        "manage_patients",
        "view_patients",
        "upload_scans",
        "view_scan_status",
        "view_predictions",
        "view_final_labels",
    ],
}

# Django permissions each role's group holds (the admin also manages users in Django's admin).
ROLE_EXTRA_PERMISSIONS = {
    ADMIN: [
        "auth.add_user",
        "auth.view_user",
        "auth.view_group",
        "radiology.add_apitoken",
        "radiology.view_apitoken",
        "radiology.delete_apitoken",
    ],
}


def can(user, action):
    return bool(user and user.is_authenticated and user.has_perm(ACTIONS[action]))


def is_service_account(user):
    """An integration account and nothing more: it works through the API, never the pages, and
    others may hold tokens for it (a person's token is for that person alone)."""
    if not (user and user.is_authenticated) or user.is_staff or user.is_superuser:
        return False
    return group_names(user) == {INTEGRATION}


def group_names(user):
    """The user's group names, read once per user object (a request's user is loaded per request)."""
    if not hasattr(user, "_radiology_group_names"):
        user._radiology_group_names = frozenset(user.groups.values_list("name", flat=True))
    return user._radiology_group_names


def role_of(user):
    names = group_names(user) if user.is_authenticated else set()
    return next((role for role in ROLES if role in names), None)


def require(action):
    """View decorator: login first, then the action's permission (403 otherwise)."""

    def decorator(view):
        @wraps(view)
        @login_required
        def wrapper(request, *args, **kwargs):
            if is_service_account(request.user):
                raise PermissionDenied("Service accounts use the API, not the pages.")
            if not can(request.user, action):
                raise PermissionDenied(f"Your role may not {action.replace('_', ' ')}.")
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def role_context(request):
    """Template context: `can.<action>` for menus, and the user's role."""
    user = getattr(request, "user", None)
    return {
        "can": {action: can(user, action) for action in ACTIONS},
        "role": role_of(user) if user else None,
    }


def ensure_roles(**kwargs):
    """Create the role groups with exactly their permissions (runs after every migrate)."""
    from django.contrib.auth.models import Group, Permission

    for role in ROLES:
        group, _ = Group.objects.get_or_create(name=role)
        wanted = [ACTIONS[a] for a in ROLE_ACTIONS[role]] + ROLE_EXTRA_PERMISSIONS.get(role, [])
        perms = []
        for dotted in wanted:
            app_label, codename = dotted.split(".")
            perms.append(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        group.permissions.set(perms)

"""Django's user admin, made safe for the admin role (a non-superuser).

The admin role manages people and their roles (groups), but cannot become anyone else or more
than it is: it cannot edit superusers or other admins, cannot change its own groups or
permissions, never grants superuser status or single permissions, and never sets another
person's password: it sends them a link to choose one (and cannot redirect that link by
changing their email address). Superusers keep Django's full user admin.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied, ValidationError

from radiology.actions import accounts
from radiology.permissions import ADMIN


def is_protected_from(actor, user):
    """True when `user` is beyond what a non-superuser `actor` may edit: a superuser, or an admin other than itself."""
    if actor.is_superuser or user is None:
        return False
    if user.is_superuser:
        return True
    return user.pk != actor.pk and (user.is_staff or user.groups.filter(name=ADMIN).exists())


class PasswordlessAccountForm(forms.ModelForm):
    """A new account as the admin role creates it: no password until the user chooses one from the link."""

    email = forms.EmailField(
        required=False,
        help_text="The link to choose a password is sent here. Leave it empty for a service account "
        "(integration group): it signs in with tokens only.",
    )

    class Meta:
        model = get_user_model()
        fields = ["username", "email"]

    def save(self, commit=True):
        user = super().save(commit=False)
        user.set_unusable_password()
        if commit:
            user.save()
        return user


class RoleSafeUserAdmin(UserAdmin):
    actions = ["send_password_reset_link"]
    # Django's two-list picker (a tooltip icon with a prohibited aria-label) and split date/time
    # inputs (no label of their own) fail WCAG 2.1 AA under axe-core: roles are picked in a plain
    # labelled list, and when someone joined or last logged in is recorded by the system anyway.
    filter_horizontal = ()
    readonly_fields = ("last_login", "date_joined")

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and not is_protected_from(request.user, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and not is_protected_from(request.user, obj)

    def get_fieldsets(self, request, obj=None):
        if request.user.is_superuser:
            return super().get_fieldsets(request, obj)
        if obj is None:
            return ((None, {"fields": ("username", "email")}),)
        # No password field: its link leads to a form that sets the password directly.
        (name, options), *rest = super().get_fieldsets(request, obj)
        return ((name, {**options, "fields": tuple(f for f in options["fields"] if f != "password")}), *rest)

    def get_form(self, request, obj=None, **kwargs):
        if obj is None and not request.user.is_superuser:
            kwargs["form"] = PasswordlessAccountForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        if request.user.is_superuser or obj is None:
            return fields
        fields = (*fields, "is_superuser", "user_permissions")
        if obj.pk == request.user.pk:
            return (*fields, "groups", "is_staff", "is_active")
        return (*fields, "email")  # the reset link goes there: it is not the admin role's to redirect

    def user_change_password(self, request, id, form_url=""):
        if not request.user.is_superuser:
            raise PermissionDenied("Send the user a link to choose their password instead.")
        return super().user_change_password(request, id, form_url)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change and not request.user.is_superuser and obj.email:
            accounts.send_password_reset_link(request.user, obj, request)

    @admin.action(description="Send a link to choose a new password", permissions=["change"])
    def send_password_reset_link(self, request, queryset):
        for user in queryset:
            if is_protected_from(request.user, user):
                self.message_user(request, f"{user.get_username()}: not yours to manage.", messages.ERROR)
                continue
            try:
                accounts.send_password_reset_link(request.user, user, request)
            except ValidationError as error:
                self.message_user(request, " ".join(error.messages), messages.ERROR)
            else:
                self.message_user(request, f"A link was sent to {user.get_username()}.", messages.SUCCESS)


admin.site.unregister(get_user_model())
admin.site.register(get_user_model(), RoleSafeUserAdmin)

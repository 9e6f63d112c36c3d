from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin


class RoleSafeUserAdmin(UserAdmin):
    """The admin role manages people and their roles (groups), never superuser status or
    single permissions: otherwise it could grant itself, or anyone, every right."""

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        return fields if request.user.is_superuser else (*fields, "is_superuser", "user_permissions")


admin.site.unregister(get_user_model())
admin.site.register(get_user_model(), RoleSafeUserAdmin)

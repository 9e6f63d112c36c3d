from django.contrib import admin

from classifier.models import ModelVersion


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["version", "threshold", "is_active", "created_at"]
    readonly_fields = [
        "version",
        "artifact_path",
        "sha256",
        "threshold",
        "metadata",
        "evaluation",
        "parent",
        "is_active",
        "created_at",
    ]

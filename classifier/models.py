"""The model registry: every model version the product has known, and which one is in force."""

from pathlib import Path

from django.conf import settings
from django.db import models, transaction


class ModelVersion(models.Model):
    version = models.CharField(max_length=100, unique=True)
    artifact_path = models.CharField(max_length=500, help_text="The .keras file, absolute or relative to the project.")
    sha256 = models.CharField(max_length=64)
    threshold = models.FloatField(help_text="Probability at or above which the model says PNEUMONIA.")
    metadata = models.JSONField(default=dict)
    evaluation = models.JSONField(default=dict, blank=True, help_text="Offline metrics by data set name.")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="derived")
    is_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"], condition=models.Q(is_active=True), name="one_active_model_version"
            ),
        ]
        permissions = [("activate_modelversion", "Can activate a model version")]

    def __str__(self):
        return self.version

    @classmethod
    def active(cls):
        return cls.objects.filter(is_active=True).first()

    def activate(self):
        with transaction.atomic():
            ModelVersion.objects.select_for_update().filter(is_active=True).exclude(pk=self.pk).update(is_active=False)
            self.is_active = True
            self.save(update_fields=["is_active"])

    def resolved_artifact_path(self) -> Path:
        path = Path(self.artifact_path)
        return path if path.is_absolute() else Path(settings.BASE_DIR) / path

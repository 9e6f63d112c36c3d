"""The model registry: every model version the product has known, and which one is in force."""

from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from classifier.conflicts import StateConflict


class ModelVersion(models.Model):
    version = models.CharField(max_length=100, unique=True)
    artifact_path = models.CharField(max_length=500, help_text="The .keras file, absolute or relative to the project.")
    sha256 = models.CharField(max_length=64)
    threshold = models.FloatField(help_text="Probability at or above which the model says PNEUMONIA.")
    metadata = models.JSONField(default=dict)
    evaluation = models.JSONField(default=dict, blank=True, help_text="Offline metrics by data set name.")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="derived")
    is_active = models.BooleanField(default=False)
    # The challenger also predicts every new scan, in the shadow of the active version, so that it
    # can be compared with it on the doctors' confirmed cases before anyone promotes it.
    is_challenger = models.BooleanField(default=False)
    challenger_since = models.DateTimeField(
        null=True, blank=True, help_text="When its latest challenge began (kept after it ends: its comparison)."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"], condition=models.Q(is_active=True), name="one_active_model_version"
            ),
            models.UniqueConstraint(
                fields=["is_challenger"], condition=models.Q(is_challenger=True), name="one_challenger_model_version"
            ),
            models.CheckConstraint(
                condition=~models.Q(is_active=True, is_challenger=True), name="active_model_version_is_no_challenger"
            ),
            models.CheckConstraint(
                condition=models.Q(is_challenger=False) | models.Q(challenger_since__isnull=False),
                name="challenger_has_a_start",
            ),
        ]
        permissions = [("activate_modelversion", "Can activate a model version")]

    def __str__(self):
        return self.version

    def probability_source(self):
        """How this version's probability is computed, in words, for the doctor's review page."""
        zooms = (self.metadata.get("preprocessing") or {}).get("test_time_zooms") or [1.0]
        members = ((self.metadata.get("training") or {}).get("ensemble") or {}).get("members") or []
        parts = ["Calibrated" if self.metadata.get("probability_calibration") else "Not calibrated"]
        if members:
            parts.append(f"{len(members)} networks together (the mean of their log-odds)")
        if len(zooms) == 1:
            parts.append("on the image as is")
        else:
            zoomed = ", ".join(f"{zoom:g}" for zoom in zooms if zoom != 1.0)
            parts.append(f"the mean of {len(zooms)} views of the image, as is and zoomed out to {zoomed}")
        return (
            "; ".join(parts) + ". The heatmap explains the as-is view; its strength follows the probability, "
            "so a scan the model finds normal shows a faint one."
        )

    @classmethod
    def active(cls):
        return cls.objects.filter(is_active=True).first()

    @classmethod
    def challenger(cls):
        return cls.objects.filter(is_challenger=True).first()

    def activate(self):
        """Puts this version in force; a challenger promoted so stops being one."""
        with transaction.atomic():
            ModelVersion.objects.select_for_update().filter(is_active=True).exclude(pk=self.pk).update(is_active=False)
            self.is_active = True
            self.is_challenger = False
            self.save(update_fields=["is_active", "is_challenger"])

    def start_challenge(self):
        """Makes this inactive version the challenger. One at a time: the database settles a race."""
        with transaction.atomic():
            locked = ModelVersion.objects.select_for_update().get(pk=self.pk)
            if locked.is_active:
                raise StateConflict(f"Model {self.version} is active: only an inactive version can challenge it.")
            if locked.is_challenger:
                raise StateConflict(f"Model {self.version} is the challenger already.")
            current = ModelVersion.challenger()
            if current is not None:
                raise StateConflict(
                    f"Model {current.version} is the challenger: end its challenge before starting another."
                )
            try:
                with transaction.atomic():
                    updated = ModelVersion.objects.filter(pk=self.pk, is_active=False).update(
                        is_challenger=True, challenger_since=timezone.now()
                    )
            except IntegrityError:
                raise StateConflict("Another model version became the challenger at the same moment.") from None
            if not updated:
                raise StateConflict(f"Model {self.version} became active meanwhile.")
            self.refresh_from_db(fields=["is_active", "is_challenger", "challenger_since"])

    def end_challenge(self):
        """Stops running this challenger; its predictions and its start stay for the comparison."""
        if not ModelVersion.objects.filter(pk=self.pk, is_challenger=True).update(is_challenger=False):
            raise StateConflict(f"Model {self.version} is not the challenger.")
        self.is_challenger = False

    def resolved_artifact_path(self) -> Path:
        path = Path(self.artifact_path)
        return path if path.is_absolute() else Path(settings.BASE_DIR) / path

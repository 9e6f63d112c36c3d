"""What PneumoScan knows of the PACS: each instance it has looked at, the poll's state, the outbox."""

from django.db import models
from django.utils import timezone


class PacsInstance(models.Model):
    """One instance found in the PACS and what was done with it. Its SOP Instance UID is unique:
    two pollers that find the same instance at once ingest it once (the database takes one)."""

    class Outcome(models.TextChoices):
        INGESTED = "ingested", "Ingested"
        SKIPPED = "skipped", "Skipped"  # not a frontal chest X-ray, or a file the decoder refuses
        CONFLICT = "conflict", "Conflict"  # cannot be matched to a patient without guessing

    sop_instance_uid = models.CharField("SOP Instance UID", max_length=64, unique=True)
    study_instance_uid = models.CharField("Study Instance UID", max_length=64)
    series_instance_uid = models.CharField("Series Instance UID", max_length=64, db_index=True)
    patient_id = models.CharField("Patient ID in the DICOM", max_length=64, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    reason = models.TextField(blank=True)
    scan = models.OneToOneField(
        "radiology.Scan", null=True, blank=True, on_delete=models.PROTECT, related_name="pacs_instance"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self):
        return f"{self.get_outcome_display()} {self.sop_instance_uid}"


class PollState(models.Model):
    """The one row of the poll's history: when it last succeeded, its last error."""

    ROW_ID = 1

    last_started_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"PACS poll: last success {self.last_success_at}, last error {self.last_error_at}"

    @classmethod
    def current(cls):
        return cls.objects.get_or_create(pk=cls.ROW_ID)[0]


class OutboxItem(models.Model):
    """One DICOM object to store in the PACS (STOW-RS), written in the same transaction as the
    prediction or review it reports, and sent until the PACS has it. Its UIDs are fixed when the
    row is written: a resend after a lost answer stores the same instance again, never a second one."""

    class Kind(models.TextChoices):
        AI_REPORT = "ai_report", "AI result (SR, unverified)"
        OVERLAY = "overlay", "Grad-CAM overlay (secondary capture)"
        DOCTOR_REPORT = "doctor_report", "Doctor's result (SR, verified)"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    scan = models.ForeignKey("radiology.Scan", on_delete=models.PROTECT, related_name="pacs_outbox")
    prediction = models.ForeignKey("radiology.Prediction", null=True, blank=True, on_delete=models.PROTECT)
    review = models.OneToOneField(
        "radiology.Review", null=True, blank=True, on_delete=models.PROTECT, related_name="pacs_outbox"
    )
    study_instance_uid = models.CharField("Study Instance UID", max_length=64)
    series_instance_uid = models.CharField("Series Instance UID", max_length=64)
    sop_instance_uid = models.CharField("SOP Instance UID", max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    next_attempt_at = models.DateTimeField(default=timezone.now, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["prediction", "kind"],
                condition=models.Q(prediction__isnull=False),
                name="one_pacs_object_of_each_kind_per_prediction",
            )
        ]

    def __str__(self):
        return f"{self.get_kind_display()} for scan {self.scan_id}"

"""Clinical records: patients, their scans, the model's predictions, the doctors' reviews, the audit trail."""

import math
import uuid
from pathlib import Path

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from classifier.models import ModelVersion


class Label(models.TextChoices):
    NORMAL = "NORMAL", "Normal"
    PNEUMONIA = "PNEUMONIA", "Pneumonia"

    @classmethod
    def other(cls, label):
        return cls.NORMAL if label == cls.PNEUMONIA else cls.PNEUMONIA


class PatientQuerySet(models.QuerySet):
    def matching(self, text):
        """Patients whose name or MRN contains `text`, in any case (the pages' and the API's search)."""
        return self.filter(models.Q(name__icontains=text) | models.Q(mrn__icontains=text))


class Patient(models.Model):
    class Sex(models.TextChoices):
        # DICOM's Patient's Sex (0010,0040) values.
        MALE = "M", "Male"
        FEMALE = "F", "Female"
        OTHER = "O", "Other"

    mrn = models.CharField(
        "MRN",
        max_length=64,
        unique=True,
        help_text="Medical record number.",
        error_messages={"unique": "A patient with this MRN already exists."},
    )
    name = models.CharField(max_length=200)
    birth_date = models.DateField()
    sex = models.CharField(max_length=1, choices=Sex.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = PatientQuerySet.as_manager()

    class Meta:
        ordering = ["name", "mrn"]
        permissions = [("view_patient_history", "Can view a patient's scan history")]

    def __str__(self):
        return f"{self.name} ({self.mrn})"


def scan_upload_path(scan, filename):
    # Stored names never come from the client: the original name is kept in a field only.
    now = timezone.now()
    return f"scans/{now:%Y/%m}/{uuid.uuid4().hex}{Path(filename).suffix.lower()}"


def heatmap_upload_path(prediction, filename):
    now = timezone.now()
    return f"heatmaps/{now:%Y/%m}/{uuid.uuid4().hex}.png"


class Scan(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        PROCESSING = "processing", "Processing"
        PREDICTED = "predicted", "Predicted"
        FAILED = "failed", "Failed"
        REVIEWED = "reviewed", "Reviewed"

    class Format(models.TextChoices):
        PNG = "png", "PNG"
        JPEG = "jpeg", "JPEG"
        DICOM = "dicom", "DICOM"

    class Source(models.TextChoices):
        UPLOAD = "upload", "Upload"
        PACS = "pacs", "PACS"

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="scans")
    image = models.FileField(upload_to=scan_upload_path)
    image_format = models.CharField(max_length=8, choices=Format.choices)
    original_filename = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="uploaded_scans")
    uploaded_at = models.DateTimeField(default=timezone.now, db_index=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED, db_index=True)
    failure_reason = models.TextField(blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True, help_text="Last time the prediction task was sent.")
    processing_since = models.DateTimeField(null=True, blank=True, help_text="When a worker last claimed it.")
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.UPLOAD)
    # A DICOM's identity in the department's archive (empty for PNG and JPEG).
    study_instance_uid = models.CharField("Study Instance UID", max_length=64, blank=True)
    series_instance_uid = models.CharField("Series Instance UID", max_length=64, blank=True)
    sop_instance_uid = models.CharField("SOP Instance UID", max_length=64, blank=True)
    # The prediction pipeline's state machine (radiology/actions/pipeline.py): queued -> processing
    # (claimed by one task run, named by claim_token, until lease_expires_at) -> predicted | failed.
    claim_token = models.CharField(max_length=64, blank=True, help_text="The task run holding it while processing.")
    lease_expires_at = models.DateTimeField(
        null=True, blank=True, help_text="Until then no other worker may claim it; after, its holder is taken as dead."
    )
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Claims since upload or the last re-queue.")
    # Which doctor has it open for review, until when (renewed while the page is open): "next"
    # sends other doctors elsewhere (radiology/actions/reading.py).
    read_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    read_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-uploaded_at"]
        constraints = [
            models.UniqueConstraint(fields=["patient", "sha256"], name="one_scan_per_file_per_patient"),
            # A DICOM instance is one scan, whichever door (upload, PACS poll) it came through first.
            models.UniqueConstraint(
                fields=["sop_instance_uid"], condition=~models.Q(sop_instance_uid=""), name="one_scan_per_sop_instance"
            ),
        ]
        indexes = [
            # The review queue's overdue part, oldest first (radiology/triage.py).
            models.Index(
                fields=["uploaded_at", "id"], condition=models.Q(status="predicted"), name="scan_waiting_for_review"
            ),
        ]
        permissions = [
            ("view_scan_image", "Can view scan images"),
            ("view_scan_heatmap", "Can view the model's heatmaps"),
            ("requeue_scan", "Can re-queue a scan"),
            ("view_dashboard", "Can view the accuracy dashboard"),
            ("view_pacs_status", "Can view the PACS connection's status"),
        ]

    def __str__(self):
        return f"Scan {self.pk} of {self.patient}"

    @property
    def is_settled(self):
        """No worker will change it any more: predicted, reviewed, or failed until re-queued."""
        return self.status in (self.Status.PREDICTED, self.Status.FAILED, self.Status.REVIEWED)

    def latest_review(self):
        """The review in force: the end of the chain of corrections (see Review's constraints)."""
        return self.reviews.select_related("doctor").filter(superseded_by__isnull=True).order_by("-pk").first()


def logit(probability, bound=1e-6):
    probability = min(max(probability, bound), 1 - bound)
    return math.log(probability / (1 - probability))


def triage_score(probability, threshold):
    """How far past its own model's threshold a prediction is, in log-odds: logit(p) - logit(t).

    Each model version has its own threshold, so raw probabilities of two versions do not rank
    together (0.6 is far past a 0.3 threshold and short of a 0.65 one). The margin over each
    version's threshold does: 0 at the threshold, positive for PNEUMONIA, negative for NORMAL.
    Log-odds rather than probability points, because a step near 0 or 1 means more than one near
    the middle. For predictions of one version it orders exactly as the probability does."""
    return logit(probability) - logit(threshold)


class Prediction(models.Model):
    # One per scan: the database itself refuses a second one when a task is delivered twice.
    scan = models.OneToOneField(Scan, on_delete=models.CASCADE, related_name="prediction")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="predictions")
    probability = models.FloatField()
    label = models.CharField(max_length=10, choices=Label.choices)
    threshold = models.FloatField()
    heatmap = models.FileField(upload_to=heatmap_upload_path)
    inference_ms = models.FloatField()
    # classifier.intended_use: {"within": bool, "reasons": ["age", "view", "image"], "score": float | None};
    # None for predictions made before the check existed.
    intended_use = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # The review queue's order (radiology/triage.py), comparable across model versions: see triage_score().
    triage_score = models.FloatField(default=0.0, editable=False)

    def __str__(self):
        return f"{self.label} ({self.probability:.3f}) for scan {self.scan_id}"

    def save(self, *args, **kwargs):
        """Also moves the prediction's counts in the weekly PredictionWeek summary, in the same
        transaction (bulk_create and QuerySet.update() bypass it: rebuild_prediction_summary after them)."""
        from radiology.outcomes import refresh_prediction_week

        self.triage_score = triage_score(self.probability, self.threshold)
        with transaction.atomic():
            refresh_prediction_week(self, lambda: super(Prediction, self).save(*args, **kwargs))

    @property
    def outside_intended_use(self):
        return bool(self.intended_use) and not self.intended_use.get("within", True)

    @property
    def intended_use_reasons_text(self):
        from classifier.intended_use import describe

        return describe((self.intended_use or {}).get("reasons", []))

    @property
    def image_checked(self):
        return bool(self.intended_use) and self.intended_use.get("score") is not None


def within_intended_use(prediction="prediction"):
    """Rows whose prediction (reached through the lookup path `prediction`) was within the model's
    intended use; a prediction made before the check existed has no record and counts as within."""
    return models.Q(**{f"{prediction}__intended_use__isnull": True}) | models.Q(
        **{f"{prediction}__intended_use__within": True}
    )


class Review(models.Model):
    class Decision(models.TextChoices):
        CONFIRM = "confirm", "Confirm"
        OVERRIDE = "override", "Override"

    scan = models.ForeignKey(Scan, on_delete=models.PROTECT, related_name="reviews")
    doctor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reviews")
    decision = models.CharField(max_length=10, choices=Decision.choices)
    final_label = models.CharField(max_length=10, choices=Label.choices)
    note = models.TextField(blank=True)
    supersedes = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="superseded_by"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # With `supersedes` one-to-one, a scan's reviews form one chain: one first review, and
            # each review corrected at most once. Concurrent first reviews: the database takes one.
            models.UniqueConstraint(
                fields=["scan"], condition=models.Q(supersedes__isnull=True), name="one_first_review_per_scan"
            )
        ]
        permissions = [("view_review_note", "Can read the doctors' review notes")]

    def __str__(self):
        return f"{self.get_decision_display()} {self.final_label} on scan {self.scan_id}"


class AuditEvent(models.Model):
    """One event of the audit trail: append-only (PostgreSQL refuses UPDATE and DELETE on it),
    and chained: each carries the keyed hash of the event before it and its own
    (radiology/audit_chain.py), so `verify_audit` finds any edited, inserted or deleted row."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    prev_hash = models.CharField(max_length=64, blank=True, help_text="The hash of the event before this one.")
    hash = models.CharField(max_length=64, blank=True, help_text="Keyed hash of this event's content and prev_hash.")

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor} {self.action} {self.object_type} {self.object_id}"


class AuditChainHead(models.Model):
    """The audit chain's last event, in one row. Writers lock it to append one at a time (so
    the chain follows the ids), and verify_audit compares it with the table's end: events cut
    from the end leave the head pointing past them."""

    last_event_id = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, blank=True)

    def __str__(self):
        return f"Audit chain head: event {self.last_event_id}"


class ReviewOutcome(models.Model):
    """One row per reviewed scan: what the dashboard counts, kept up to date in the review transaction.

    A summary of Scan, Prediction and Review (radiology/outcomes.py writes it), so that the accuracy
    figures are single-table aggregations instead of a join with the latest review of every scan.
    """

    scan = models.OneToOneField(Scan, on_delete=models.CASCADE, primary_key=True, related_name="outcome")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    uploaded_at = models.DateTimeField()
    probability = models.FloatField()
    threshold = models.FloatField()
    predicted_positive = models.BooleanField(help_text="The model's label was PNEUMONIA.")
    actual_positive = models.BooleanField(help_text="The latest review's final label is PNEUMONIA.")
    upload_to_prediction_s = models.FloatField()
    prediction_to_review_s = models.FloatField(help_text="Until the first review: a correction is not the turnaround.")
    within_intended_use = models.BooleanField(
        default=True, help_text="False: the prediction was outside the model's intended use (counted apart)."
    )

    class Meta:
        indexes = [
            models.Index(fields=["uploaded_at"], name="outcome_uploaded"),
            models.Index(fields=["model_version", "uploaded_at"], name="outcome_version_uploaded"),
        ]

    def __str__(self):
        return f"Outcome of scan {self.scan_id}"


class ReviewWeek(models.Model):
    """Within-use reviewed scans of one model version uploaded in one week that share a threshold and
    a confusion-matrix cell: how many, and their turnarounds summed in whole microseconds (exact).

    With ReviewWeekScore and ReviewWeekTurnaround, the weekly summary of ReviewOutcome that the
    dashboard reads (radiology/outcomes.py keeps it in the review transaction), so that its figures
    read a number of rows bounded by weeks x bins, whatever the number of scans. `week` is the
    Monday, in the site's time zone, of the upload. Outside intended use nothing is counted here:
    the dashboard reports those scans apart, from their predictions.
    """

    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    week = models.DateField()
    threshold = models.FloatField()
    actual_positive = models.BooleanField()
    predicted_positive = models.BooleanField()
    n = models.PositiveIntegerField()
    upload_to_prediction_us = models.BigIntegerField()
    prediction_to_review_us = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["model_version", "week", "threshold", "actual_positive", "predicted_positive"],
                name="one_review_week_per_cell",
            )
        ]

    def __str__(self):
        return f"{self.n} reviews of {self.model_version_id} in the week of {self.week}"


class ReviewWeekScore(models.Model):
    """Within-use reviewed scans of one model version uploaded in one week whose probability falls in
    one bin of width 1/SCORE_BINS (radiology.outcomes.score_bin), by the doctors' final label: the
    histogram the AUC and the reliability view are computed from."""

    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    week = models.DateField()
    score_bin = models.PositiveSmallIntegerField()
    positives = models.PositiveIntegerField()
    negatives = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model_version", "week", "score_bin"], name="one_review_week_per_score_bin")
        ]

    def __str__(self):
        return f"Score bin {self.score_bin} of {self.model_version_id} in the week of {self.week}"


class ReviewWeekTurnaround(models.Model):
    """Within-use reviewed scans of one model version uploaded in one week whose turnaround, rounded to
    two significant digits (radiology.outcomes.binned_seconds), is `seconds`: the percentiles' histogram."""

    class Measure(models.TextChoices):
        UPLOAD_TO_PREDICTION = "upload_to_prediction"
        PREDICTION_TO_REVIEW = "prediction_to_review"

    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    week = models.DateField()
    measure = models.CharField(max_length=24, choices=Measure.choices)
    seconds = models.FloatField()
    n = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["model_version", "week", "measure", "seconds"], name="one_review_week_per_turnaround"
            )
        ]

    def __str__(self):
        return f"{self.n} x {self.measure} {self.seconds} s of {self.model_version_id} in the week of {self.week}"


class PredictionWeek(models.Model):
    """Predictions of one model version for scans uploaded in one week (Monday, site's time zone),
    counted by what the dashboard's flagged figures tell apart: `counted` is "predicted", "unchecked"
    (made before the intended-use check existed), "flagged" (outside intended use) or "flagged:<reason>".
    Kept by Prediction.save() in the prediction's transaction (radiology/outcomes.py), so that the
    flagged counts read a row per version, week and count whatever the number of scans."""

    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    week = models.DateField()
    counted = models.CharField(max_length=32)
    n = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model_version", "week", "counted"], name="one_prediction_week_per_count")
        ]

    def __str__(self):
        return f"{self.n} {self.counted} of {self.model_version_id} in the week of {self.week}"


class ChallengerPrediction(models.Model):
    """A challenger model version's answer on a scan, made in the shadow of the active version's.

    Kept apart from Prediction on purpose: the review flow, the scan records of the API and the
    dashboard read Prediction only, so no doctor sees it; the model comparison reads both.
    """

    scan = models.ForeignKey(Scan, on_delete=models.CASCADE, related_name="challenger_predictions")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="challenger_predictions")
    probability = models.FloatField()
    label = models.CharField(max_length=10, choices=Label.choices)
    threshold = models.FloatField()
    inference_ms = models.FloatField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scan", "model_version"], name="one_challenger_prediction_per_scan")
        ]

    def __str__(self):
        return f"{self.model_version} (challenger): {self.label} ({self.probability:.3f}) for scan {self.scan_id}"


class ApiToken(models.Model):
    """An API token. Only the SHA-256 of its key is stored: the key itself is shown once, when
    it is issued. A key is 256 random bits, so a plain hash cannot be reversed by guessing."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Who asked for it: the user, an admin (for a service account), or none (the command line).",
    )
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. the PACS bridge's host.")
    key_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=8, help_text="The key's first characters, to tell tokens apart.")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["user_id", "name"]
        constraints = [models.UniqueConstraint(fields=["user", "name"], name="one_token_per_name_per_user")]

    def __str__(self):
        return f"{self.name} ({self.prefix}...) of {self.user}"

    @property
    def is_expired(self):
        return self.expires_at <= timezone.now()

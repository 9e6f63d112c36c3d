"""API representations. Input serializers validate shapes and types; the rules live in radiology.actions."""

from django.contrib.auth import get_user_model
from django.core.validators import ProhibitNullCharactersValidator, RegexValidator
from django.db import models
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from classifier.models import ModelVersion
from radiology.actions.reading import reader_of
from radiology.actions.tokens import DEFAULT_NAME
from radiology.models import ApiToken, Label, Patient, Prediction, Review, Scan
from radiology.monitoring import BANDS
from radiology.permissions import can


def absolute_url(serializer, name, pk):
    path = reverse(name, args=[pk])
    request = serializer.context.get("request")
    return request.build_absolute_uri(path) if request else path


class RoleFieldsMixin:
    """Fields shown only to a caller who may do the named action, so the API shows each role what
    its pages show. Without a request in the context nothing role-bound is shown (fail closed).
    The schema lists these fields as optional."""

    role_fields = {}  # field name -> action (radiology.permissions.ACTIONS)

    def to_representation(self, instance):
        data = super().to_representation(instance)
        request = self.context.get("request")
        user = request.user if request is not None else None
        for field, action in self.role_fields.items():
            if not can(user, action):
                data.pop(field, None)
        return data


WITHOUT_NUL = RegexValidator(
    r"^[^\x00]*$", message=ProhibitNullCharactersValidator.message, code=ProhibitNullCharactersValidator.code
)


class StrictCharField(serializers.CharField):
    """A string field that takes only strings: the schema says `string`, so a JSON number or
    boolean is refused (DRF's CharField would turn 0 into "0"). Its refusal of NUL (PostgreSQL
    stores none) is a pattern, so the schema states it too."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.validators = [
            WITHOUT_NUL if isinstance(validator, ProhibitNullCharactersValidator) else validator
            for validator in self.validators
        ]

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictModelSerializer(serializers.ModelSerializer):
    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.CharField: StrictCharField,
        models.TextField: StrictCharField,
    }


# --- errors ---------------------------------------------------------------------------------------


class ErrorDetailSerializer(serializers.Serializer):
    status = serializers.IntegerField()
    code = serializers.CharField()
    message = serializers.CharField()
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="For invalid input: the messages for each field.",
    )


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


# --- patients -------------------------------------------------------------------------------------


class PatientSerializer(StrictModelSerializer):
    class Meta:
        model = Patient
        fields = ["id", "mrn", "name", "birth_date", "sex", "created_at"]
        read_only_fields = ["id", "created_at"]


class PatientSearchSerializer(serializers.Serializer):
    query = StrictCharField(max_length=200, help_text="Part of the name or MRN.")


class PatientSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = Patient
        fields = ["id", "mrn", "name"]


# --- scans ----------------------------------------------------------------------------------------


class IntendedUseSerializer(serializers.Serializer):
    within = serializers.BooleanField(help_text="False: the model was not made for this scan.")
    reasons = serializers.ListField(
        child=serializers.ChoiceField(choices=["age", "view", "image"]),
        help_text="age: outside the model's population; view: not a frontal chest radiograph (DICOM); "
        "image: unlike the training images.",
    )
    score = serializers.FloatField(
        allow_null=True, help_text="The image's distance from the training images; null: no image check."
    )


class PredictionSerializer(RoleFieldsMixin, serializers.ModelSerializer):
    model_version = serializers.CharField(source="model_version.version", read_only=True)
    intended_use = IntendedUseSerializer(
        read_only=True, allow_null=True, help_text="The intended-use check; null for predictions made before it."
    )
    heatmap_url = serializers.SerializerMethodField(help_text="The Grad-CAM heatmap (PNG); doctors only.")

    class Meta:
        model = Prediction
        fields = [
            "probability",
            "label",
            "threshold",
            "triage_score",
            "model_version",
            "intended_use",
            "heatmap_url",
            "created_at",
        ]
        extra_kwargs = {
            "triage_score": {
                "help_text": "The review queue's order: logit(probability) - logit(threshold), comparable across model versions."
            }
        }

    role_fields = {"heatmap_url": "view_heatmaps"}

    def get_heatmap_url(self, prediction) -> str:
        return absolute_url(self, "api-scan-heatmap", prediction.scan_id)


class ReviewSerializer(RoleFieldsMixin, serializers.ModelSerializer):
    doctor = serializers.CharField(source="doctor.username", read_only=True)

    class Meta:
        model = Review
        fields = ["id", "scan", "doctor", "decision", "final_label", "note", "supersedes", "created_at"]

    role_fields = {"note": "view_review_notes"}


class ScanSerializer(RoleFieldsMixin, serializers.ModelSerializer):
    """A scan as each role's pages show it: radiographers and admins its status; integration
    accounts also the prediction and the final labels; doctors everything, notes included."""

    prediction = serializers.SerializerMethodField()
    reviews = ReviewSerializer(many=True, read_only=True)
    uploaded_by = serializers.CharField(source="uploaded_by.username", read_only=True)
    image_url = serializers.SerializerMethodField(help_text="The uploaded file as stored.")

    class Meta:
        model = Scan
        fields = [
            "id",
            "patient",
            "status",
            "failure_reason",
            "image_format",
            "original_filename",
            "uploaded_by",
            "uploaded_at",
            "source",
            "study_instance_uid",
            "series_instance_uid",
            "sop_instance_uid",
            "image_url",
            "prediction",
            "reviews",
        ]

    role_fields = {
        "image_url": "view_scan_images",
        "prediction": "view_predictions",
        "reviews": "view_final_labels",
    }

    @extend_schema_field(PredictionSerializer(allow_null=True))
    def get_prediction(self, scan):
        prediction = getattr(scan, "prediction", None)  # the reverse one-to-one raises when absent
        return PredictionSerializer(prediction, context=self.context).data if prediction else None

    def get_image_url(self, scan) -> str:
        return absolute_url(self, "api-scan-image", scan.pk)


class UploadedScanSerializer(ScanSerializer):
    duplicate = serializers.BooleanField(
        help_text="True when this file had already been uploaded for this patient: the existing scan is returned (200) and nothing new is stored."
    )

    class Meta(ScanSerializer.Meta):
        fields = ScanSerializer.Meta.fields + ["duplicate"]


class ScanUploadSerializer(serializers.Serializer):
    patient = serializers.PrimaryKeyRelatedField(
        queryset=Patient.objects.all(),
        required=False,
        help_text="The patient's id. Optional for a DICOM file, or with `mrn`: as on the upload page.",
    )
    mrn = StrictCharField(required=False, max_length=64, help_text="The patient's MRN, instead of `patient`.")
    image = serializers.FileField(help_text="A PNG, JPEG or DICOM file; its content decides the format, not its name.")


class ScanQuerySerializer(serializers.Serializer):
    patient = serializers.IntegerField(required=False, min_value=1, help_text="Only this patient's scans.")
    status = serializers.ChoiceField(choices=Scan.Status.choices, required=False)
    uploaded_after = serializers.DateTimeField(required=False, help_text="ISO 8601, inclusive.")
    uploaded_before = serializers.DateTimeField(required=False, help_text="ISO 8601, exclusive.")


class QueueEntrySerializer(ScanSerializer):
    patient = PatientSummarySerializer(read_only=True)
    overdue = serializers.SerializerMethodField(
        help_text="Waited past the triage cap: it jumps ahead of higher scores."
    )

    read_by = serializers.SerializerMethodField(
        help_text="The doctor who has this scan open for review now (null: nobody); 'next' on the pages skips it."
    )
    read_until = serializers.SerializerMethodField(help_text="Until when that claim holds unless renewed.")

    class Meta(ScanSerializer.Meta):
        fields = ScanSerializer.Meta.fields + ["overdue", "read_by", "read_until"]

    def get_overdue(self, scan) -> bool:
        return scan.overdue_rank == 0

    def get_read_by(self, scan) -> str | None:
        reader = reader_of(scan)
        return reader.get_username() if reader else None

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_read_until(self, scan):
        return serializers.DateTimeField().to_representation(scan.read_until) if reader_of(scan) else None


# --- reviews --------------------------------------------------------------------------------------


class ReviewCreateSerializer(serializers.Serializer):
    scan = serializers.PrimaryKeyRelatedField(queryset=Scan.objects.all(), help_text="The scan's id.")
    decision = serializers.ChoiceField(choices=Review.Decision.choices)
    final_label = serializers.ChoiceField(
        choices=Label.choices,
        required=False,
        help_text="Optional: the label this decision gives; refused if it is not what the decision implies.",
    )
    note = StrictCharField(required=False, allow_blank=True, max_length=5000, help_text="Required to override.")
    supersedes = serializers.PrimaryKeyRelatedField(
        queryset=Review.objects.all(),
        required=False,
        allow_null=True,
        default=None,
        help_text=(
            "The id of the scan's latest review you saw (null or absent: you saw none). If another review "
            "was recorded since, the answer is 409 with it, and nothing changes."
        ),
    )


class ReviewConflictSerializer(ErrorSerializer):
    latest_review = ReviewSerializer(
        allow_null=True, help_text="The scan's latest review now: decide again knowing it (name it in `supersedes`)."
    )


# --- metrics --------------------------------------------------------------------------------------


class MetricsQuerySerializer(serializers.Serializer):
    model_version = serializers.SlugRelatedField(
        slug_field="version", queryset=ModelVersion.objects.all(), required=False, help_text="A model version name."
    )
    start = serializers.DateField(required=False, help_text="First day of uploads counted (YYYY-MM-DD).")
    end = serializers.DateField(required=False, help_text="Last day of uploads counted (YYYY-MM-DD).")

    def validate(self, attrs):
        if attrs.get("start") and attrs.get("end") and attrs["start"] > attrs["end"]:
            raise serializers.ValidationError({"end": "The end date is before the start date."})
        return attrs


class DurationStatsSerializer(serializers.Serializer):
    n = serializers.IntegerField()
    median_s = serializers.FloatField(allow_null=True)
    p95_s = serializers.FloatField(allow_null=True)
    mean_s = serializers.FloatField(allow_null=True)


class TurnaroundSerializer(serializers.Serializer):
    upload_to_prediction = DurationStatsSerializer()
    prediction_to_review = DurationStatsSerializer(help_text="Until the first review.")


class WeekMetricsSerializer(serializers.Serializer):
    week_start = serializers.DateField(help_text="The Monday of the week (scans by upload date).")
    n = serializers.IntegerField()
    accuracy = serializers.FloatField(allow_null=True)
    sensitivity = serializers.FloatField(allow_null=True)
    specificity = serializers.FloatField(allow_null=True)
    auc = serializers.FloatField(allow_null=True)
    override_rate = serializers.FloatField()


class IntervalsSerializer(serializers.Serializer):
    """95 % intervals [low, high]; null where the figure is undefined."""

    accuracy = serializers.ListField(child=serializers.FloatField(), allow_null=True, help_text="Wilson.")
    sensitivity = serializers.ListField(child=serializers.FloatField(), allow_null=True, help_text="Wilson.")
    specificity = serializers.ListField(child=serializers.FloatField(), allow_null=True, help_text="Wilson.")
    precision = serializers.ListField(child=serializers.FloatField(), allow_null=True, help_text="Wilson.")
    override_rate = serializers.ListField(child=serializers.FloatField(), allow_null=True, help_text="Wilson.")
    auc = serializers.ListField(child=serializers.FloatField(), allow_null=True, help_text="Hanley-McNeil.")


class FlaggedWeekSerializer(serializers.Serializer):
    week_start = serializers.DateField()
    predicted = serializers.IntegerField()
    flagged = serializers.IntegerField()
    share = serializers.FloatField()


class OutsideIntendedUseSerializer(serializers.Serializer):
    predicted = serializers.IntegerField(help_text="Scans predicted in the period (reviewed or not).")
    flagged = serializers.IntegerField(help_text="Of those, outside the model's intended use.")
    share = serializers.FloatField(allow_null=True)
    share_interval = serializers.ListField(child=serializers.FloatField(), allow_null=True, help_text="Wilson 95 %.")
    unchecked = serializers.IntegerField(help_text="Predicted before the check existed (counted as within).")
    by_reason = serializers.DictField(child=serializers.IntegerField(), help_text="age, view, image: flagged counts.")
    by_week = FlaggedWeekSerializer(many=True)


class ReliabilityBinSerializer(serializers.Serializer):
    low = serializers.FloatField()
    high = serializers.FloatField()
    n = serializers.IntegerField()
    mean_probability = serializers.FloatField(allow_null=True)
    observed = serializers.FloatField(allow_null=True, help_text="Share the doctors labeled pneumonia.")


class ReliabilitySerializer(serializers.Serializer):
    bins = ReliabilityBinSerializer(many=True)
    ece = serializers.FloatField(allow_null=True, help_text="Expected calibration error over the 10 bins.")


class DriftWeekSerializer(serializers.Serializer):
    week_start = serializers.DateField()
    probability_n = serializers.IntegerField(required=False)
    probability_psi = serializers.FloatField(required=False, allow_null=True)
    probability_band = serializers.ChoiceField(BANDS, required=False)
    image_score_n = serializers.IntegerField(required=False)
    image_score_psi = serializers.FloatField(required=False, allow_null=True)
    image_score_band = serializers.ChoiceField(BANDS, required=False)


class DriftSerializer(serializers.Serializer):
    reference = serializers.CharField(allow_null=True, help_text="The reference sample (the validation split).")
    watch_from = serializers.FloatField()
    drift_from = serializers.FloatField()
    min_scans = serializers.IntegerField(help_text="Fewer scans in a week: band 'too few'.")
    by_week = DriftWeekSerializer(many=True)


class MetricsSerializer(serializers.Serializer):
    n = serializers.IntegerField(help_text="Reviewed scans counted (within the model's intended use only).")
    accuracy = serializers.FloatField(allow_null=True)
    sensitivity = serializers.FloatField(allow_null=True)
    specificity = serializers.FloatField(allow_null=True)
    precision = serializers.FloatField(allow_null=True)
    f1 = serializers.FloatField(allow_null=True)
    auc = serializers.FloatField(allow_null=True)
    confusion_matrix = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField()), help_text="[[tn, fp], [fn, tp]]."
    )
    threshold = serializers.FloatField(
        allow_null=True, help_text="The decision threshold, when all counted scans share one."
    )
    thresholds = serializers.ListField(child=serializers.FloatField())
    override_rate = serializers.FloatField(
        allow_null=True, help_text="Share of counted scans whose final label differs from the model's."
    )
    turnaround = TurnaroundSerializer()
    model_versions = serializers.ListField(child=serializers.CharField())
    by_week = WeekMetricsSerializer(many=True, help_text="The same metrics week by week: accuracy over time.")
    intervals = IntervalsSerializer()
    too_few_reviews = serializers.BooleanField(help_text="Fewer than min_reviews reviewed scans: too few to judge by.")
    min_reviews = serializers.IntegerField()
    outside_intended_use = OutsideIntendedUseSerializer(help_text="Scans outside intended use, counted apart.")
    drift = DriftSerializer(
        allow_null=True,
        help_text="With ?model_version=: weekly population stability index of its probabilities and image "
        "scores against its validation reference; null without a version or a reference.",
    )
    reliability = ReliabilitySerializer(
        help_text="Predicted probability (10 bins) against the doctors' final labels, within intended use."
    )


# --- model versions -------------------------------------------------------------------------------


class ModelVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "version",
            "threshold",
            "sha256",
            "metadata",
            "evaluation",
            "parent",
            "is_active",
            "is_challenger",
            "challenger_since",
            "created_at",
        ]


class EstimateSerializer(serializers.Serializer):
    value = serializers.FloatField(allow_null=True, help_text="Null when the cases cannot define it.")
    low = serializers.FloatField(allow_null=True, help_text="95 % interval (Wilson; DeLong for the AUC).")
    high = serializers.FloatField(allow_null=True)


class ComparedSideSerializer(serializers.Serializer):
    version = serializers.CharField(allow_null=True)
    threshold = serializers.FloatField(allow_null=True)
    accuracy = EstimateSerializer()
    sensitivity = EstimateSerializer()
    specificity = EstimateSerializer()
    auc = EstimateSerializer()
    confusion_matrix = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField()), help_text="[[tn, fp], [fn, tp]]"
    )


class CaseAnswerSerializer(serializers.Serializer):
    probability = serializers.FloatField()
    label = serializers.ChoiceField(choices=Label.choices, help_text="At its own version's threshold.")


class ComparedCaseSerializer(serializers.Serializer):
    scan = serializers.IntegerField()
    uploaded_at = serializers.DateTimeField()
    final_label = serializers.ChoiceField(choices=Label.choices, help_text="The latest review's.")
    champion = CaseAnswerSerializer()
    challenger = CaseAnswerSerializer()


class ComparisonSerializer(serializers.Serializer):
    challenger_since = serializers.DateTimeField()
    is_challenger = serializers.BooleanField(help_text="False once its challenge has ended or it was promoted.")
    n = serializers.IntegerField(help_text="Reviewed scans both models predicted since the challenge began.")
    champion = ComparedSideSerializer()
    challenger = ComparedSideSerializer()
    disagreements = serializers.IntegerField(help_text="Cases where the two labels differ.")
    only_champion_correct = serializers.IntegerField()
    only_challenger_correct = serializers.IntegerField()
    mcnemar_p = serializers.FloatField(allow_null=True, help_text="McNemar's exact test of the paired accuracies.")
    delong_p = serializers.FloatField(allow_null=True, help_text="DeLong's test of the paired AUCs.")
    cases_limit = serializers.IntegerField(help_text="At most this many cases are listed, the most recent first.")
    cases_truncated = serializers.BooleanField(help_text="True when n exceeds cases_limit.")
    cases = ComparedCaseSerializer(many=True)


READ_THEN_CONFIRM = "Read the comparison with the active model, then confirm the promotion."


@extend_schema_field({"type": "boolean", "enum": [True]})
class ConfirmationField(serializers.BooleanField):
    """`true` and nothing else: the schema says so, as the API refuses anything less."""

    def to_internal_value(self, data):
        if super().to_internal_value(data) is not True:
            raise serializers.ValidationError(READ_THEN_CONFIRM, code="invalid")
        return True


class PromotionSerializer(serializers.Serializer):
    confirm = ConfirmationField(
        error_messages={"required": READ_THEN_CONFIRM},
        help_text="true: you have read the comparison and promote the challenger.",
    )


class PromotedSerializer(serializers.Serializer):
    model_version = ModelVersionSerializer()
    comparison = ComparisonSerializer(help_text="The comparison it was promoted on.")


# --- tokens ---------------------------------------------------------------------------------------


class TokenNameSerializer(serializers.Serializer):
    name = serializers.CharField(
        max_length=100,
        default=DEFAULT_NAME,
        help_text="What the token is for. A token of yours with the same name is revoked.",
    )


class CredentialsSerializer(TokenNameSerializer):
    username = StrictCharField(max_length=150)
    password = StrictCharField(max_length=4096, trim_whitespace=False, style={"input_type": "password"})


class TokenSummarySerializer(serializers.ModelSerializer):
    """A token as it is listed: whose, what for, until when; never the key."""

    user = serializers.IntegerField(source="user_id", read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)
    expired = serializers.BooleanField(source="is_expired", read_only=True)

    class Meta:
        model = ApiToken
        fields = ["id", "name", "user", "username", "prefix", "created_at", "expires_at", "expired"]


class IssuedTokenSerializer(TokenSummarySerializer):
    token = serializers.CharField(
        source="key",
        read_only=True,
        help_text="Shown in this response only (only its hash is kept): send as `Authorization: Token <token>`.",
    )

    class Meta(TokenSummarySerializer.Meta):
        fields = TokenSummarySerializer.Meta.fields + ["token"]


class TokenIssueSerializer(TokenNameSerializer):
    user = serializers.PrimaryKeyRelatedField(
        queryset=get_user_model().objects.filter(is_active=True),
        help_text="Your own id, or an integration service account's.",
    )

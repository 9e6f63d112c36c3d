"""The clinical API: patients, scans, the review queue, reviews, metrics, model versions.

Each view translates HTTP into a call of radiology.actions (or a query) and back. Who may do
what is `required_actions`, checked by RoleActionPermission against radiology.permissions.
"""

from django.db.models import Prefetch
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from classifier.conflicts import StateConflict
from classifier.models import ModelVersion
from radiology.actions import clinical, pipeline, registry
from radiology.api import serializers as s
from radiology.api.errors import error_body
from radiology.comparison import compare_with_champion
from radiology.dashboard import dashboard_metrics
from radiology.ingest import RefusedFile, RejectedUpload, read_upload
from radiology.models import Patient, Review, Scan
from radiology.private_files import STORED_CONTENT_TYPES, heatmap_response, stored_image_response
from radiology.triage import ReviewQueue

# Who may see a scan's record: its uploader's role, the reviewing doctors, the admins.
SEE_SCANS = ("view_scan_status", "review_scans", "view_patient_history")


def query(serializer_class, request):
    """The validated query parameters (400 naming the parameter otherwise). A parameter given
    empty or more than once is refused, as the schema says: DRF would skip an empty one."""
    params = serializer_class(data=request.query_params)
    malformed = {
        name: ["Give one non-empty value, or leave the parameter out."]
        for name in params.fields
        if name in request.query_params
        and (request.query_params.get(name) == "" or len(request.query_params.getlist(name)) > 1)
    }
    if malformed:
        raise ValidationError(malformed)
    params.is_valid(raise_exception=True)
    return params.validated_data


def error(description):
    """A documented error answer in the one error format (radiology.api.errors)."""
    return OpenApiResponse(s.ErrorSerializer, description=description)


def with_reviews(scans):
    return scans.select_related("uploaded_by", "prediction", "prediction__model_version").prefetch_related(
        Prefetch("reviews", queryset=Review.objects.select_related("doctor").order_by("created_at", "pk"))
    )


SEARCH_BY_POST = (
    'Search with POST /api/v1/patients/search/ and a JSON body {"query": "..."}: '
    "names and MRNs are kept out of URLs and logs."
)


@extend_schema_view(
    list=extend_schema(summary="List patients"),
    retrieve=extend_schema(summary="A patient"),
    create=extend_schema(
        summary="Create a patient",
        responses={201: s.PatientSerializer, 409: error("A patient with this MRN already exists.")},
    ),
)
class PatientViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    serializer_class = s.PatientSerializer
    queryset = Patient.objects.all()
    required_actions = {
        "list": ("view_patients",),
        "retrieve": ("view_patients",),
        "create": ("manage_patients",),
        "search": ("view_patients",),
    }

    def list(self, request, *args, **kwargs):
        if "search" in request.query_params:
            raise ValidationError({"search": [SEARCH_BY_POST]})
        return super().list(request, *args, **kwargs)

    @extend_schema(
        summary="Search patients by part of the name or MRN",
        description="The text travels in the body, never in the URL. Paginated as the list is: "
        "POST the same body to `next` for the following page.",
        request=s.PatientSearchSerializer,
        responses={
            200: inline_serializer(
                "PatientSearchResults",
                {
                    "count": serializers.IntegerField(),
                    "next": serializers.URLField(allow_null=True),
                    "previous": serializers.URLField(allow_null=True),
                    "results": s.PatientSerializer(many=True),
                },
            )
        },
    )
    @action(detail=False, methods=["post"])
    def search(self, request):
        form = s.PatientSearchSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        page = self.paginate_queryset(self.get_queryset().matching(form.validated_data["query"].strip()))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def perform_create(self, serializer):
        serializer.instance = clinical.create_patient(self.request.user, **serializer.validated_data)


@extend_schema_view(
    list=extend_schema(summary="List scans", parameters=[s.ScanQuerySerializer]),
    retrieve=extend_schema(summary="A scan: status, prediction once predicted, reviews"),
)
class ScanViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = s.ScanSerializer
    queryset = Scan.objects.all()
    required_actions = {
        "list": SEE_SCANS,
        "retrieve": SEE_SCANS,
        "create": ("upload_scans",),
        "image": ("view_scan_images",),
        "heatmap": ("view_heatmaps",),
        "requeue": ("requeue_scans",),
    }

    def get_queryset(self):
        scans = with_reviews(super().get_queryset()).order_by("-uploaded_at", "-pk")
        if self.action != "list":
            return scans
        filters = query(s.ScanQuerySerializer, self.request)
        if "patient" in filters:
            scans = scans.filter(patient_id=filters["patient"])
        if "status" in filters:
            scans = scans.filter(status=filters["status"])
        if "uploaded_after" in filters:
            scans = scans.filter(uploaded_at__gte=filters["uploaded_after"])
        if "uploaded_before" in filters:
            scans = scans.filter(uploaded_at__lt=filters["uploaded_before"])
        return scans

    @extend_schema(
        summary="Upload an X-ray for a patient",
        description=(
            "Multipart form: `image` (PNG, JPEG or DICOM) and the patient, found as the upload page finds them: "
            "`patient` (id), else `mrn`, else the Patient ID a DICOM file carries (404 when no patient has it). "
            "A DICOM file naming another patient than the one given is refused. The file goes through the same "
            "validation as the upload page and is queued for the model once stored: 201 with the new scan. "
            "The same file uploaded again for the same patient stores nothing and returns the existing "
            "scan with 200 and `duplicate: true`. A refused file gives 400 with the reason under `image`."
        ),
        request={"multipart/form-data": s.ScanUploadSerializer},
        responses={
            201: s.UploadedScanSerializer,
            200: s.UploadedScanSerializer,
            404: error("No such endpoint or scan, or no patient has the id or MRN given (under `fields.patient`)."),
        },
    )
    def create(self, request):
        form = s.ScanUploadSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        upload = read_upload(form.validated_data["image"])
        if isinstance(upload, RefusedFile):
            raise ValidationError({"image": [f"Refused, nothing stored. {upload.reason}"]})
        patient = clinical.patient_for_upload(
            upload.decoded, form.validated_data.get("patient"), form.validated_data.get("mrn", "")
        )
        try:
            result = clinical.upload_scan(request.user, patient, upload.name, upload.data, upload.decoded)
        except RejectedUpload as refusal:
            raise ValidationError({"image": [f"Refused, nothing stored. {refusal}"]}) from None
        scan = with_reviews(Scan.objects).get(pk=result.scan.pk)
        body = {**s.ScanSerializer(scan, context=self.get_serializer_context()).data, "duplicate": result.duplicate}
        return Response(body, status=status.HTTP_200_OK if result.duplicate else status.HTTP_201_CREATED)

    @extend_schema(
        summary="Download the uploaded file as stored",
        description="Each download is recorded in the audit trail (`scan.image_viewed`).",
        responses={(200, media): OpenApiTypes.BINARY for media in STORED_CONTENT_TYPES.values()},
    )
    @action(detail=True, methods=["get"])
    def image(self, request, pk=None):
        return stored_image_response(request, self.get_object())

    @extend_schema(
        summary="The model's Grad-CAM heatmap (PNG)",
        description="404 until the scan is predicted. Each view is recorded in the audit trail (`scan.heatmap_viewed`).",
        responses={(200, "image/png"): OpenApiTypes.BINARY},
    )
    @action(detail=True, methods=["get"])
    def heatmap(self, request, pk=None):
        scan = self.get_object()
        prediction = getattr(scan, "prediction", None)
        if prediction is None:
            raise NotFound("This scan has no prediction yet.")
        return heatmap_response(request, scan)

    @extend_schema(
        summary="Send a failed or stuck scan back to the model (admins)",
        request=None,
        responses={200: s.ScanSerializer, 409: error("The scan is predicted: there is nothing to re-queue.")},
    )
    @action(detail=True, methods=["post"])
    def requeue(self, request, pk=None):
        scan = pipeline.requeue_scan(request.user, self.get_object())
        return Response(
            s.ScanSerializer(with_reviews(Scan.objects).get(pk=scan.pk), context=self.get_serializer_context()).data
        )


@extend_schema_view(list=extend_schema(summary="The scans waiting for review, in review order (doctors)"))
class QueueViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Most likely pneumonia first; a scan that has waited past the cap jumps ahead (same order as the page)."""

    serializer_class = s.QueueEntrySerializer
    required_actions = {"list": ("review_scans",)}

    def get_queryset(self):
        return ReviewQueue(narrow=lambda scans: with_reviews(scans.select_related("patient", "read_by")))


class ReviewViewSet(viewsets.GenericViewSet):
    serializer_class = s.ReviewCreateSerializer
    parser_classes = [JSONParser]  # `supersedes: null` has no form encoding
    required_actions = {"create": ("review_scans",)}

    @extend_schema(
        summary="Confirm or override the model's prediction (doctors)",
        description=(
            "A later review of the same scan corrects the earlier one; both are kept. Overriding needs a `note`. "
            "`supersedes` names the latest review you saw (null for a first review): when another review was "
            "recorded meanwhile (a second doctor, a double submission) the answer is 409 with the scan's "
            "latest review, and nothing is recorded."
        ),
        responses={
            201: s.ReviewSerializer,
            404: error("No scan, or no review named in `supersedes`, has the id given (under `fields`)."),
            409: OpenApiResponse(
                s.ReviewConflictSerializer,
                description="Another review was recorded since the one named in `supersedes` (`latest_review`), "
                "or the scan has no prediction yet (`latest_review` null).",
            ),
        },
    )
    def create(self, request):
        form = self.get_serializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        try:
            review = clinical.review_scan(
                request.user,
                data["scan"],
                data["decision"],
                data.get("note", ""),
                data.get("final_label"),
                supersedes=data["supersedes"],
            )
        except clinical.ReviewConflict as conflict:
            latest = (
                s.ReviewSerializer(conflict.latest, context=self.get_serializer_context()).data
                if conflict.latest
                else None
            )
            body = {**error_body(409, "conflict", str(conflict)), "latest_review": latest}
            return Response(body, status=status.HTTP_409_CONFLICT)
        except StateConflict as conflict:  # nothing to review yet: so no review either
            body = {**error_body(409, "conflict", " ".join(conflict.messages)), "latest_review": None}
            return Response(body, status=status.HTTP_409_CONFLICT)
        return Response(
            s.ReviewSerializer(review, context=self.get_serializer_context()).data, status=status.HTTP_201_CREATED
        )


class MetricsView(APIView):
    required_actions = {"get": ("view_dashboard",)}

    @extend_schema(
        summary="The model's accuracy against the doctors' final labels (admins)",
        description="Over reviewed scans; `start` and `end` are upload dates, inclusive. A metric undefined for the data is null.",
        parameters=[s.MetricsQuerySerializer],
        responses={200: s.MetricsSerializer, 404: error("No model version has the name given.")},
    )
    def get(self, request):
        filters = query(s.MetricsQuerySerializer, request)
        metrics = dashboard_metrics(filters.get("model_version"), filters.get("start"), filters.get("end"))
        return Response(s.MetricsSerializer(metrics).data)


@extend_schema_view(
    list=extend_schema(summary="Model versions (admins)"), retrieve=extend_schema(summary="A model version")
)
class ModelVersionViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = s.ModelVersionSerializer
    queryset = ModelVersion.objects.all().order_by("-created_at", "-pk")
    required_actions = {
        "list": ("view_model_versions",),
        "retrieve": ("view_model_versions",),
        "activate": ("activate_model_versions",),
        "challenger": ("activate_model_versions",),
        "promote": ("activate_model_versions",),
        "comparison": ("view_model_versions",),
    }

    @extend_schema(
        summary="Put this model version in force (admins)",
        description="New predictions use it; earlier predictions keep the version that made them.",
        request=None,
        responses={
            200: s.ModelVersionSerializer,
            409: error("It is the challenger (promote it instead), or its files are missing or damaged."),
        },
    )
    @action(detail=True, methods=["post"])
    def activate(self, request, pk=None):
        version = registry.activate_model_version(request.user, self.get_object())
        return Response(self.get_serializer(version).data)

    @extend_schema(
        methods=["POST"],
        summary="Make this version the challenger (admins)",
        description="It then also predicts every new scan in the shadow of the active version; doctors never "
        "see its answers. One challenger at a time; an active version cannot be one.",
        request=None,
        responses={
            200: s.ModelVersionSerializer,
            409: error("It is active or the challenger already, another is the challenger, or its files are missing."),
        },
    )
    @extend_schema(
        methods=["DELETE"],
        summary="End this version's challenge (admins)",
        description="Its predictions stay, for its comparison.",
        request=None,
        responses={200: s.ModelVersionSerializer, 409: error("It is not the challenger.")},
    )
    @action(detail=True, methods=["post", "delete"])
    def challenger(self, request, pk=None):
        version = self.get_object()
        if request.method == "DELETE":
            registry.end_challenger(request.user, version)
        else:
            registry.start_challenger(request.user, version)
        return Response(self.get_serializer(version).data)

    @extend_schema(
        summary="The challenger against the active model on confirmed cases (admins)",
        description="Over the reviewed scans both predicted since its challenge began; the truth is the latest "
        "review's final label. Every figure has its 95 % interval; `cases` lists the most recent "
        "`cases_limit` of them.",
        responses={200: s.ComparisonSerializer},
    )
    @action(detail=True, methods=["get"])
    def comparison(self, request, pk=None):
        version = self.get_object()
        if version.challenger_since is None:
            raise NotFound(f"Model {version.version} has never been the challenger: there is no comparison.")
        return Response(s.ComparisonSerializer(compare_with_champion(version)).data)

    @extend_schema(
        summary="Promote the challenger to active (admins)",
        description="Read its comparison first, then send `confirm: true`; the answer carries the comparison "
        "it was promoted on, which the audit event keeps too.",
        request=s.PromotionSerializer,
        responses={
            200: s.PromotedSerializer,
            409: error("It is not the challenger, or its files are missing or damaged."),
        },
    )
    @action(detail=True, methods=["post"])
    def promote(self, request, pk=None):
        form = s.PromotionSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        version = self.get_object()
        comparison = registry.promote_challenger(request.user, version, form.validated_data["confirm"])
        return Response(s.PromotedSerializer({"model_version": version, "comparison": comparison}).data)


@csrf_exempt  # it changes nothing, so a browser session's POST gets this 404, not the CSRF page
def unknown_endpoint(request, *args, **kwargs):
    """Any other path under /api/: a 404 in the API's error format rather than an HTML page."""
    return JsonResponse(error_body(404, "not_found", "No such API endpoint."), status=404)

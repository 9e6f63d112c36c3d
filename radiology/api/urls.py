from django.contrib.auth.decorators import login_required
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import SimpleRouter

from radiology.api import views
from radiology.api.token_views import OwnTokenViewSet, TokenAdminViewSet, TokenExchangeView

router = SimpleRouter()
router.register("patients", views.PatientViewSet, basename="api-patient")
router.register("scans", views.ScanViewSet, basename="api-scan")
router.register("queue", views.QueueViewSet, basename="api-queue")
router.register("reviews", views.ReviewViewSet, basename="api-review")
router.register("model-versions", views.ModelVersionViewSet, basename="api-model-version")
router.register("tokens", TokenAdminViewSet, basename="api-token")
router.register("auth/tokens", OwnTokenViewSet, basename="api-own-tokens")

urlpatterns = [
    path("v1/", include(router.urls)),
    path("v1/metrics/", views.MetricsView.as_view(), name="api-metrics"),
    path("v1/auth/token/", TokenExchangeView.as_view(), name="api-own-token"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # People reach the docs in a browser: send them to the login page rather than a JSON 401.
    # The split view serves its start-up script as a file (?script): no inline script, for the CSP.
    path(
        "docs/",
        login_required(
            SpectacularSwaggerSplitView.as_view(url_name="api-schema", template_name="radiology/api_docs.html")
        ),
        name="api-docs",
    ),
    re_path(r"", views.unknown_endpoint),
]

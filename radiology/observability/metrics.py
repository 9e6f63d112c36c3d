"""Prometheus metrics: `/metrics` on the web app, and a worker's own exporter.

Events are counted by the actions once their transaction has committed (uploads, predictions,
failures, reviews), inference time in the task, request latency in RequestMetricsMiddleware. The state of the queue (depth,
oldest waiting scan, flagged share, override rate, active model) is read from the database at
each scrape.

With PROMETHEUS_MULTIPROC_DIR set (gunicorn's workers, Celery's pool processes), every process
writes its samples there and a scrape sums them (prometheus_client's multiprocess mode). A Celery
worker's main process serves its pool's samples on WORKER_METRICS_PORT.

`/metrics` is never public: with METRICS_TOKEN set it needs `Authorization: Bearer <token>`;
without it, only a direct loopback request (no proxy header) gets an answer. Anyone else gets 404.
"""

import hmac
import os
import time
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, F, Min, Q
from django.http import HttpResponse, HttpResponseNotFound
from django.utils import timezone
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

LOOPBACK = {"127.0.0.1", "::1"}
PROXY_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")

REQUEST_SECONDS = Histogram(
    "pneumoscan_http_request_duration_seconds",
    "Time to answer a request, by view.",
    ["view", "method"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 5, 10),
)
UPLOADS = Counter("pneumoscan_uploads_total", "Scans stored (a duplicate upload is not counted).")
PREDICTIONS = Counter("pneumoscan_predictions_total", "Predictions recorded.")
PREDICTION_FAILURES = Counter("pneumoscan_prediction_failures_total", "Scans the model could not predict.")
INFERENCE_SECONDS = Histogram(
    "pneumoscan_inference_seconds",
    "Model time per scan (preprocessing and its views; not the heatmap).",
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2),
)
REVIEWS = Counter("pneumoscan_reviews_total", "Doctors' reviews, by decision.", ["decision"])


class WorkflowCollector:
    """The queue and the model, read from the database at each scrape (a few indexed queries)."""

    def collect(self):
        from classifier.models import ModelVersion
        from radiology.models import Prediction, ReviewOutcome, Scan

        now = timezone.now()
        counts = dict(Scan.objects.order_by().values_list("status").annotate(n=Count("pk")))
        scans = GaugeMetricFamily("pneumoscan_scans", "Scans by status.", labels=["status"])
        for status in Scan.Status.values:
            scans.add_metric([status], counts.get(status, 0))
        yield scans

        waiting = Scan.objects.filter(status=Scan.Status.PREDICTED)
        yield GaugeMetricFamily(
            "pneumoscan_review_queue_depth", "Predicted scans waiting for a doctor.", value=counts.get("predicted", 0)
        )
        oldest = waiting.aggregate(oldest=Min("uploaded_at"))["oldest"]
        yield GaugeMetricFamily(
            "pneumoscan_review_queue_oldest_wait_seconds",
            "How long the longest-waiting scan in the review queue has waited since upload (0 when empty).",
            value=(now - oldest).total_seconds() if oldest else 0,
        )

        day = Prediction.objects.filter(created_at__gte=now - timedelta(days=1)).aggregate(
            n=Count("pk"), flagged=Count("pk", filter=Q(label="PNEUMONIA"))
        )
        yield GaugeMetricFamily(
            "pneumoscan_flagged_share_24h",
            "Share of the last 24 hours' predictions that said PNEUMONIA (0 without predictions).",
            value=day["flagged"] / day["n"] if day["n"] else 0,
        )

        week = ReviewOutcome.objects.filter(uploaded_at__gte=now - timedelta(days=7)).aggregate(
            n=Count("pk"), overridden=Count("pk", filter=~Q(actual_positive=F("predicted_positive")))
        )
        yield GaugeMetricFamily(
            "pneumoscan_override_rate_7d",
            "Share of the reviewed scans uploaded in the last 7 days whose final label differs from the model's.",
            value=week["overridden"] / week["n"] if week["n"] else 0,
        )

        active = GaugeMetricFamily("pneumoscan_active_model_info", "The model version in force.", labels=["version"])
        version = ModelVersion.active()
        if version is not None:
            active.add_metric([version.version], 1)
        yield active


def multiprocess_registry():
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def scrape_registry():
    """Every process's samples (multiprocess mode) or this process's, plus the database's figures."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = multiprocess_registry()
    else:
        registry = CollectorRegistry()
        for collector in (REQUEST_SECONDS, UPLOADS, PREDICTIONS, PREDICTION_FAILURES, INFERENCE_SECONDS, REVIEWS):
            registry.register(collector)
    registry.register(WorkflowCollector())
    return registry


def may_scrape(request):
    token = settings.METRICS_TOKEN
    if token:
        sent = request.META.get("HTTP_AUTHORIZATION", "")
        return hmac.compare_digest(sent.encode(), f"Bearer {token}".encode())
    direct = not any(request.META.get(header) for header in PROXY_HEADERS)
    return direct and request.META.get("REMOTE_ADDR") in LOOPBACK


def metrics_view(request):
    if not may_scrape(request):
        return HttpResponseNotFound("Not found", content_type="text/plain")
    return HttpResponse(generate_latest(scrape_registry()), content_type=CONTENT_TYPE_LATEST)


class RequestMetricsMiddleware:
    """Request latency by view name (the URL pattern's name, never the path: no ids in labels)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        view = (match.view_name or match._func_path) if match else "unmatched"
        REQUEST_SECONDS.labels(view=view, method=request.method).observe(time.perf_counter() - started)
        return response


def start_worker_exporter(**kwargs):
    """In a Celery worker's main process: serve its pool's samples on WORKER_METRICS_PORT
    (WORKER_METRICS_ADDR, loopback by default). Pool processes write to PROMETHEUS_MULTIPROC_DIR."""
    if not settings.WORKER_METRICS_PORT:
        return None
    from prometheus_client import start_http_server

    registry = multiprocess_registry() if os.environ.get("PROMETHEUS_MULTIPROC_DIR") else REGISTRY
    server, _ = start_http_server(settings.WORKER_METRICS_PORT, addr=settings.WORKER_METRICS_ADDR, registry=registry)
    return server

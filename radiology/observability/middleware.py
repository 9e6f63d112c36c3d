"""The operations endpoints, answered ahead of the rest of the middleware.

Compose, load balancers and Prometheus reach them by an internal address over plain HTTP, which
ALLOWED_HOSTS and the HTTPS redirect would refuse; they carry no session and no patient data.
"""

from radiology.observability import health, metrics

ENDPOINTS = {
    "/healthz": health.healthz,
    "/readyz": health.readyz,
    "/metrics": metrics.metrics_view,
}


class OperationsEndpointsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        view = ENDPOINTS.get(request.path_info)
        if view is not None and request.method in ("GET", "HEAD"):
            return view(request)
        return self.get_response(request)

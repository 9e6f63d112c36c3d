"""The Content-Security-Policy header on every response (settings.CONTENT_SECURITY_POLICY).

Pages load scripts and styles only from this site's static files: no inline script, style
block or style attribute runs, so injected markup cannot act (scripts may still set styles
through the DOM, which CSP allows).
"""

from django.conf import settings


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        return response

"""API tokens: exchange a password for one; list and revoke your own; admins list and revoke
anyone's and issue them for themselves or integration service accounts. A key is shown once,
in the response that issues it; listing a token never shows it.

Passwords are checked by django.contrib.auth.authenticate with the request, so django-axes
counts failures and locks out guessing exactly as on the login page.
"""

from axes.helpers import get_cool_off
from django.contrib.auth import authenticate
from django.contrib.auth.signals import user_logged_in
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.exceptions import AuthenticationFailed, Throttled
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from radiology.actions import tokens
from radiology.actions.audit import audit
from radiology.api import serializers as s
from radiology.models import ApiToken


class TokenExchangeView(APIView):
    # Exchanging a username and password for a token is how an API client first authenticates.
    permission_classes = [AllowAny]

    @extend_schema(
        summary="Exchange a username and password for a new API token",
        description=(
            "Returns a new token (its key shown this once), valid for API_TOKEN_DAYS; a token of yours with "
            "the same `name` is revoked. Repeated failures lock the username out, as on the login page."
        ),
        request=s.CredentialsSerializer,
        responses={201: s.IssuedTokenSerializer},
        auth=[],
    )
    def post(self, request):
        credentials = s.CredentialsSerializer(data=request.data)
        credentials.is_valid(raise_exception=True)
        data = credentials.validated_data
        user = authenticate(request=request._request, username=data["username"], password=data["password"])
        if user is None and getattr(request._request, "axes_locked_out", False):
            # Axes' middleware would swap the response for its plain-text lockout page: answer the
            # lockout here, in the API's error format, and tell the middleware it is handled.
            request._request.axes_locked_out = False
            cool_off = get_cool_off(request._request)
            raise Throttled(
                wait=cool_off.total_seconds() if cool_off else None,
                detail="Too many failed login attempts for this username: it is locked out for a while.",
            )
        if user is None:
            raise AuthenticationFailed("Wrong username or password.")
        # A password exchanged for a token is a sign-in: announced as the login page's are, so the
        # audit trail records it and axes clears the username's failed attempts.
        user_logged_in.send(sender=type(user), request=request._request, user=user)
        token = tokens.issue_api_token(user, user, name=data["name"])
        return Response(s.IssuedTokenSerializer(token).data, status=status.HTTP_201_CREATED)


def audit_listing(actor, scope):
    """Token lists are audited: who looked at whose tokens."""
    audit(actor, "api_token.listed", None, after={"scope": scope})


@extend_schema_view(
    list=extend_schema(summary="Your API tokens (keys are not shown)"),
    destroy=extend_schema(summary="Revoke one of your API tokens"),
)
class OwnTokenViewSet(mixins.ListModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    permission_classes = [IsAuthenticated]  # everyone manages their own tokens
    serializer_class = s.TokenSummarySerializer
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        return ApiToken.objects.filter(user=self.request.user).select_related("user").order_by("name")

    def list(self, request, *args, **kwargs):
        audit_listing(request.user, "own")
        return super().list(request, *args, **kwargs)

    @extend_schema(
        summary="Issue yourself a new API token",
        description="The key is shown in this response only. A token of yours with the same `name` is revoked.",
        request=s.TokenNameSerializer,
        responses={201: s.IssuedTokenSerializer},
    )
    def create(self, request):
        form = s.TokenNameSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        token = tokens.issue_api_token(request.user, request.user, name=form.validated_data["name"])
        return Response(s.IssuedTokenSerializer(token).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, token):
        tokens.revoke_api_token(self.request.user, token)


@extend_schema_view(
    list=extend_schema(summary="Everyone's API tokens (admins; keys are not shown)"),
    destroy=extend_schema(summary="Revoke an API token (admins)"),
)
class TokenAdminViewSet(mixins.ListModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    queryset = ApiToken.objects.select_related("user").order_by("user__username", "name")
    serializer_class = s.TokenSummarySerializer
    lookup_value_regex = r"\d+"
    required_actions = {"list": ("manage_tokens",), "create": ("manage_tokens",), "destroy": ("manage_tokens",)}

    def list(self, request, *args, **kwargs):
        audit_listing(request.user, "all")
        return super().list(request, *args, **kwargs)

    @extend_schema(
        summary="Issue an API token for yourself or an integration service account (admins)",
        description=(
            "Never for another person: a token acts as its user. The key is shown in this response only. "
            "A token of that user with the same `name` is revoked."
        ),
        request=s.TokenIssueSerializer,
        responses={201: s.IssuedTokenSerializer},
    )
    def create(self, request):
        form = s.TokenIssueSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        token = tokens.issue_api_token(request.user, form.validated_data["user"], name=form.validated_data["name"])
        return Response(s.IssuedTokenSerializer(token).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, token):
        tokens.revoke_api_token(self.request.user, token)

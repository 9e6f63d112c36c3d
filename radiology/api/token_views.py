"""API tokens: a user gets or sees their own; admins issue and revoke anyone's.

Passwords are checked by django.contrib.auth.authenticate with the request, so django-axes
counts failures and locks out guessing exactly as on the login page.
"""

from axes.helpers import get_cool_off
from django.contrib.auth import authenticate
from django.contrib.auth.signals import user_logged_in
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed, NotFound, Throttled
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from radiology.actions import tokens
from radiology.api import serializers as s


class OwnTokenView(APIView):
    def get_permissions(self):
        # Exchanging a username and password for a token is how an API client first authenticates.
        return [AllowAny()] if self.request.method == "POST" else [IsAuthenticated()]

    @extend_schema(summary="Your own API token", responses={200: s.TokenSerializer})
    def get(self, request):
        token = Token.objects.select_related("user").filter(user=request.user).first()
        if token is None:
            raise NotFound("You have no API token: POST your username and password here, or ask an administrator.")
        return Response(s.TokenSerializer(token).data)

    @extend_schema(
        summary="Exchange a username and password for your API token",
        description="Returns your token, creating it if you have none. Repeated failures lock the username out, as on the login page.",
        request=s.CredentialsSerializer,
        responses={200: s.TokenSerializer},
        auth=[],
    )
    def post(self, request):
        credentials = s.CredentialsSerializer(data=request.data)
        credentials.is_valid(raise_exception=True)
        user = authenticate(request=request._request, **credentials.validated_data)
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
        return Response(s.TokenSerializer(tokens.issue_api_token(user, user)).data)


@extend_schema_view(
    list=extend_schema(summary="Who has an API token (admins; keys are not shown)"),
    destroy=extend_schema(
        summary="Revoke a user's API token (admins)",
        parameters=[OpenApiParameter("user", int, OpenApiParameter.PATH, description="The user's id.")],
    ),
)
class TokenAdminViewSet(mixins.ListModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    queryset = Token.objects.select_related("user").order_by("user__username")
    serializer_class = s.IssuedTokenSummarySerializer
    lookup_field = "user"
    lookup_value_regex = r"\d+"
    required_actions = {"list": ("manage_tokens",), "create": ("manage_tokens",), "destroy": ("manage_tokens",)}

    @extend_schema(
        summary="Issue a new API token for a user (admins)",
        description="Any token the user had stops working. The key is shown in this response only.",
        request=s.TokenIssueSerializer,
        responses={201: s.TokenSerializer},
    )
    def create(self, request):
        form = s.TokenIssueSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        token = tokens.issue_api_token(request.user, form.validated_data["user"], replace=True)
        return Response(s.TokenSerializer(token).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, token):
        tokens.revoke_api_token(self.request.user, token.user)

"""No one in where they don't belong: login everywhere, private images, CSRF, rate-limited logins,
password rules, a clean deployment check, and an audit trail of sign-ins and image views.

The URL tests walk the whole URL configuration, so a page or endpoint added later is covered
without anyone remembering to add it here.
"""

import itertools
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as live_settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.middleware.csrf import CSRF_ALLOWED_CHARS
from django.test import Client
from django.urls import URLResolver, get_resolver, resolve, reverse
from django.urls.exceptions import Resolver404
from django.utils.crypto import get_random_string
from django.utils.regex_helper import normalize

import radiology.settings as configured
from radiology.actions import clinical
from radiology.api.views import unknown_endpoint
from radiology.models import ApiToken, AuditEvent
from tests.conftest import PASSWORD
from tests.factories import PredictionFactory, UserFactory
from tests.support.images import png_bytes

PROJECT = Path(__file__).resolve().parent.parent

# Where an anonymous person must be let in: the ways to sign in and out.
# The password links work without a login: their one-time token is the credential.
OPEN_TO_ANONYMOUS = {
    "login",
    "logout",
    "admin:login",
    "admin:logout",
    "api-own-token",
    "password_reset_confirm",
    "password_reset_complete",
}
# Values tried for each URL parameter until the path resolves to the pattern's own view.
PARAMETER_SAMPLES = ["1", "x", "auth"]


def strip_anchors(regex):
    regex = regex.removeprefix("^")
    for end in ("\\Z", "$"):
        regex = regex.removesuffix(end)
    return regex


def leaf_patterns(resolver=None, prefix="", namespace=""):
    """(full regex, namespaced name, pattern) for every view in the URL configuration."""
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        regex = prefix + strip_anchors(entry.pattern.regex.pattern)
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from leaf_patterns(entry, regex, inner)
        else:
            yield regex, f"{namespace}{entry.name}" if entry.name else None, entry


def sample_path(regex, pattern):
    """A concrete path that resolves to this pattern's view, or None."""
    for template, params in normalize(regex):
        for values in itertools.product(PARAMETER_SAMPLES, repeat=len(params)):
            path = "/" + template % dict(zip(params, values))
            try:
                if resolve(path).func == pattern.callback:
                    return path
            except Resolver404:
                continue
    return None


ALL_PATTERNS = list(leaf_patterns())
ALL_PATHS = {regex: sample_path(regex, pattern) for regex, _, pattern in ALL_PATTERNS}
GUARDED = [
    pytest.param(ALL_PATHS[regex], id=f"{name or '-'} {ALL_PATHS[regex]}")
    for regex, name, pattern in ALL_PATTERNS
    if name not in OPEN_TO_ANONYMOUS and pattern.callback is not unknown_endpoint and ALL_PATHS[regex]
]


def test_every_url_pattern_is_reached_by_these_tests():
    assert [regex for regex, path in ALL_PATHS.items() if path is None] == []
    assert len(GUARDED) > 40  # the walk found the site, the API and Django's admin


def superuser():
    """Every permission, so no role check answers before the check under test (no password: no hashing cost)."""
    return get_user_model().objects.create(username="root", is_superuser=True, is_staff=True)


def login_paths():
    return {reverse("login"), reverse("admin:login")}


def refuses_anonymous(response):
    if response.status_code in (401, 403):
        return True
    return response.status_code == 302 and response["Location"].split("?")[0] in login_paths()


# --- login everywhere -------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("path", GUARDED)
def test_anonymous_is_sent_to_login_everywhere(path):
    """Every method is refused (redirect to a login page, 401 or 403); a method the view does
    not accept may answer 405, but not all of them."""
    client = Client()
    responses = {method: getattr(client, method.lower())(path) for method in ("GET", "POST", "PUT", "PATCH", "DELETE")}
    refused = {method: refuses_anonymous(r) for method, r in responses.items()}
    statuses = {method: r.status_code for method, r in responses.items()}
    assert all(refused[m] or statuses[m] == 405 for m in responses), statuses
    assert any(refused.values()), statuses


@pytest.mark.django_db
def test_api_catch_all_reveals_nothing():
    response = Client().get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.django_db
def test_login_page_is_open():
    assert Client().get(reverse("login")).status_code == 200


@pytest.mark.django_db
def test_anonymous_api_gets_401_not_a_page():
    response = Client().get("/api/v1/patients/")
    assert response.status_code in (401, 403)
    assert response["Content-Type"].startswith("application/json")


# --- images are private -----------------------------------------------------------------------


def test_media_is_not_under_any_static_location():
    media = Path(configured.MEDIA_ROOT).resolve()
    static_places = [Path(configured.STATIC_ROOT).resolve()] + [Path(p).resolve() for p in configured.STATICFILES_DIRS]
    for place in static_places:
        assert not media.is_relative_to(place) and not place.is_relative_to(media), place
    assert configured.MEDIA_URL != configured.STATIC_URL
    assert not getattr(configured, "WHITENOISE_ROOT", None)


@pytest.fixture
def stored_scan(radiographer, patient):
    return clinical.upload_scan(radiographer, patient, "chest.png", png_bytes(seed=21)).scan


@pytest.mark.django_db
def test_stored_image_has_no_public_url(stored_scan):
    client = Client()
    client.force_login(superuser())
    for url in (
        live_settings.MEDIA_URL + stored_scan.image.name,
        "/" + stored_scan.image.name,
        "/static/" + stored_scan.image.name,
        "/static/../" + stored_scan.image.name,
    ):
        response = client.get(url)
        assert response.status_code == 404, url
    try:
        resolve(live_settings.MEDIA_URL + stored_scan.image.name)
    except Resolver404:
        pass
    else:
        pytest.fail("a URL pattern serves MEDIA_URL")


IMAGE_VIEWS = [
    ("scan_image", "/scans/{pk}/image/", "scan.image_viewed"),
    ("api-scan-image", "/api/v1/scans/{pk}/image/", "scan.image_viewed"),
]
HEATMAP_VIEWS = [
    ("scan_heatmap", "/scans/{pk}/heatmap/", "scan.heatmap_viewed"),
    ("api-scan-heatmap", "/api/v1/scans/{pk}/heatmap/", "scan.heatmap_viewed"),
]


@pytest.mark.django_db
@pytest.mark.parametrize("name, url, audit_action", IMAGE_VIEWS, ids=[v[0] for v in IMAGE_VIEWS])
def test_image_view_is_audited_and_private(
    name, url, audit_action, stored_scan, radiographer_client, radiographer, doctor_client, doctor
):
    url = url.format(pk=stored_scan.pk)
    for client, user in ((radiographer_client, radiographer), (doctor_client, doctor)):
        response = client.get(url)
        assert response.status_code == 200
        assert b"".join(response.streaming_content if response.streaming else [response.content])
        assert "no-store" in response["Cache-Control"] and "private" in response["Cache-Control"]
        assert AuditEvent.objects.filter(action=audit_action, actor=user, object_id=str(stored_scan.pk)).count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "name, url, audit_action", IMAGE_VIEWS + HEATMAP_VIEWS, ids=[v[0] for v in IMAGE_VIEWS + HEATMAP_VIEWS]
)
def test_image_views_refuse_users_without_the_right_and_audit_nothing(
    name, url, audit_action, outsider, admin_role_client
):
    prediction = PredictionFactory()
    url = url.format(pk=prediction.scan.pk)
    nobody = Client()
    nobody.force_login(outsider)
    for client in (nobody, admin_role_client):  # admins see metrics, not patients' images
        assert client.get(url).status_code == 403
    assert not AuditEvent.objects.filter(action=audit_action).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("name, url, audit_action", HEATMAP_VIEWS, ids=[v[0] for v in HEATMAP_VIEWS])
def test_heatmap_is_for_doctors_and_audited(name, url, audit_action, doctor_client, doctor, radiographer_client):
    prediction = PredictionFactory()
    url = url.format(pk=prediction.scan.pk)
    assert radiographer_client.get(url).status_code == 403
    response = doctor_client.get(url)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert AuditEvent.objects.filter(action=audit_action, actor=doctor, object_id=str(prediction.scan.pk)).count() == 1


# --- CSRF -------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("path", GUARDED + [reverse("login"), reverse("logout")])
def test_post_without_csrf_token_is_refused(path):
    """A signed-in browser session posting without the CSRF token is refused everywhere, pages
    and API alike."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(superuser())
    response = client.post(path, {"anything": "1"})
    assert response.status_code == 403, response.status_code
    if b"CSRF" not in response.content:
        # A view that renders its errors through a template hides the reason: the same POST
        # with a valid token must then get past the 403.
        secret = get_random_string(32, CSRF_ALLOWED_CHARS)
        client.cookies[live_settings.CSRF_COOKIE_NAME] = secret
        assert client.post(path, {"anything": "1"}, HTTP_X_CSRFTOKEN=secret).status_code != 403


@pytest.mark.django_db
def test_post_with_csrf_token_is_let_through(doctor):
    client = Client(enforce_csrf_checks=True)
    client.get(reverse("login"))
    token = client.cookies["csrftoken"].value
    response = client.post(
        reverse("login"), {"username": doctor.username, "password": PASSWORD, "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302
    assert client.session.get("_auth_user_id") == str(doctor.pk)


POST_FORM = re.compile(r"<form\b[^>]*method=[\"']?post[\"']?[^>]*>(.*?)</form>", re.IGNORECASE | re.DOTALL)


def test_every_post_form_in_the_templates_carries_the_csrf_token():
    forms = [
        (path, body) for path in (PROJECT / "templates").rglob("*.html") for body in POST_FORM.findall(path.read_text())
    ]
    assert forms, "no POST forms found: the pattern no longer matches the templates"
    missing = [str(path.relative_to(PROJECT)) for path, body in forms if "{% csrf_token %}" not in body]
    assert missing == []


# --- sign-in: rate limit, passwords, audit -----------------------------------------------------


def post_login(client, username, password):
    return client.post(reverse("login"), {"username": username, "password": password})


def is_signed_in(client, user):
    return client.session.get("_auth_user_id") == str(user.pk)


@pytest.mark.django_db
def test_login_locks_out_after_the_failure_limit_even_with_the_right_password(settings, doctor):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        assert not is_signed_in(client, doctor) and post_login(
            client, doctor.username, "wrong password 123"
        ).status_code in (200, 429)
    response = post_login(client, doctor.username, PASSWORD)
    assert response.status_code in (403, 429)
    assert not is_signed_in(client, doctor)


@pytest.mark.django_db
def test_login_below_the_failure_limit_still_works(settings, doctor):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        post_login(client, doctor.username, "wrong password 123")
    assert post_login(client, doctor.username, PASSWORD).status_code == 302
    assert is_signed_in(client, doctor)


@pytest.mark.django_db
def test_lockout_is_per_account(settings, doctor, radiographer):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        post_login(client, doctor.username, "wrong password 123")
    assert post_login(client, radiographer.username, PASSWORD).status_code == 302


@pytest.mark.django_db
def test_api_token_exchange_locks_out_too(settings, doctor):
    client = Client()
    url = reverse("api-own-token")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        assert client.post(
            url, {"username": doctor.username, "password": "wrong password 123"}, content_type="application/json"
        ).status_code in (401, 403, 429)
    response = client.post(url, {"username": doctor.username, "password": PASSWORD}, content_type="application/json")
    assert response.status_code in (401, 403, 429)
    assert not ApiToken.objects.filter(user=doctor).exists()


def test_password_validators_are_on():
    names = {v["NAME"].rsplit(".", 1)[-1] for v in live_settings.AUTH_PASSWORD_VALIDATORS}
    assert {
        "MinimumLengthValidator",
        "CommonPasswordValidator",
        "NumericPasswordValidator",
        "UserAttributeSimilarityValidator",
    } <= names


@pytest.mark.django_db
@pytest.mark.parametrize("weak", ["password", "short1", "12345678901234", "password123", "qwertyuiop"])
def test_weak_password_is_refused(weak):
    with pytest.raises(ValidationError):
        validate_password(weak)


@pytest.mark.django_db
def test_password_like_the_username_is_refused():
    user = UserFactory(username="margaret.hamilton")
    with pytest.raises(ValidationError):
        validate_password("margaret.hamilton1", user=user)


@pytest.mark.django_db
def test_strong_password_is_accepted():
    validate_password("violet kestrel harbour 41")


@pytest.mark.django_db
def test_login_and_logout_are_audited(doctor):
    client = Client()
    post_login(client, doctor.username, PASSWORD)
    login = AuditEvent.objects.get(action="auth.login")
    assert login.actor == doctor and login.object_id == str(doctor.pk) and login.after["ip"] == "127.0.0.1"
    client.post(reverse("logout"))
    assert AuditEvent.objects.get(action="auth.logout").actor == doctor


@pytest.mark.django_db
def test_failed_login_is_audited_with_the_username_never_the_password(doctor):
    post_login(Client(), doctor.username, "wrong password 123")
    post_login(Client(), "no-such-user", "another guess 456")
    failed = AuditEvent.objects.filter(action="auth.login_failed").order_by("pk")
    assert [event.after["username"] for event in failed] == [doctor.username, "no-such-user"]
    assert all(event.actor is None for event in failed)
    assert not any("wrong password" in str(event.after) or "guess" in str(event.after) for event in failed)


@pytest.mark.django_db
def test_locked_out_attempts_are_audited_as_failures(settings, doctor):
    client = Client()
    for attempt in range(settings.AXES_FAILURE_LIMIT + 2):
        post_login(
            client, doctor.username, PASSWORD if attempt == settings.AXES_FAILURE_LIMIT + 1 else "wrong password 123"
        )
    assert AuditEvent.objects.filter(action="auth.login_failed").count() == settings.AXES_FAILURE_LIMIT + 2
    assert not AuditEvent.objects.filter(action="auth.login").exists()


# --- deployment -------------------------------------------------------------------------------


def production_environment(tmp_path, **overrides):
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SECURE_", "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS"))
    }
    environment.update(
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(64),
        ALLOWED_HOSTS="pneumoscan.hospital.example",
        SECURE_HSTS_SECONDS="31536000",
        VAR_DIR=str(tmp_path / "var"),
    )
    environment.update(overrides)
    return {key: value for key, value in environment.items() if value is not None}


def manage(environment, *args):
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=PROJECT, env=environment, capture_output=True, text=True, timeout=180
    )


def test_deploy_check_is_clean_with_production_settings(tmp_path):
    result = manage(production_environment(tmp_path), "check", "--deploy", "--fail-level", "WARNING")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues (0 silenced)." in output


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    result = manage(production_environment(tmp_path, SECRET_KEY=None), "check")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_settings_are_secure_by_default(tmp_path):
    script = (
        "from django.conf import settings as s; print(s.DEBUG, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
        "s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SESSION_COOKIE_HTTPONLY, s.X_FRAME_OPTIONS)"
    )
    result = manage(production_environment(tmp_path), "shell", "--verbosity", "0", "-c", script)
    assert result.stdout.split() == ["False", "True", "True", "True", "31536000", "True", "DENY"], result.stderr

"""Content-Security-Policy without 'unsafe-inline' (issue 10, item 8): the header on every
response, and no inline script, style block, style attribute or event handler left to refuse."""

import re
from pathlib import Path

import pytest
from django.conf import settings as live_settings
from django.urls import reverse

from tests.factories import PredictionFactory
from tests.support.api import token_client

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
INLINE = {
    "inline script": re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.I),
    "style block": re.compile(r"<style\b", re.I),
    "style attribute": re.compile(r"\sstyle=", re.I),
    "event handler": re.compile(r"\son[a-z]+=", re.I),
    "javascript: URL": re.compile(r"javascript:", re.I),
}


def policy(response):
    return dict(
        directive.strip().split(" ", 1) for directive in response["Content-Security-Policy"].split(";") if directive
    )


def inline_parts(html):
    return [name for name, pattern in INLINE.items() if pattern.search(html)]


def test_policy_allows_only_this_site_and_nothing_inline():
    directives = policy_of_setting()
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["default-src"] == "'self'" and directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in live_settings.CONTENT_SECURITY_POLICY


def policy_of_setting():
    return dict(d.strip().split(" ", 1) for d in live_settings.CONTENT_SECURITY_POLICY.split(";"))


@pytest.mark.django_db
def test_every_kind_of_response_carries_the_policy(client, doctor_client, doctor):
    scan = PredictionFactory().scan
    responses = [
        client.get(reverse("login")),
        doctor_client.get(reverse("review", args=[scan.pk])),
        doctor_client.get(reverse("scan_image", args=[scan.pk])),
        doctor_client.get("/no-such-page/"),
        doctor_client.get(reverse("api-docs")),
        token_client(doctor).get("/api/v1/queue/"),
    ]
    for response in responses:
        assert policy(response) == policy_of_setting(), response.request["PATH_INFO"]


@pytest.mark.parametrize("path", sorted(TEMPLATES.rglob("*.html")), ids=lambda p: str(p.relative_to(TEMPLATES)))
def test_templates_have_nothing_inline(path):
    assert inline_parts(path.read_text()) == []


@pytest.mark.django_db
def test_rendered_pages_have_nothing_inline(client, radiographer_client, doctor_client, admin_role_client, patient):
    scan = PredictionFactory(scan__patient=patient).scan
    pages = [
        client.get(reverse("login")),
        radiographer_client.get(reverse("patient_list")),
        radiographer_client.get(reverse("upload")),
        radiographer_client.get(reverse("scan_status")),
        doctor_client.get(reverse("review", args=[scan.pk])),
        doctor_client.get(reverse("patient_history", args=[patient.pk])),
        doctor_client.get(reverse("password_change")),
        admin_role_client.get(reverse("dashboard")),
        doctor_client.get(reverse("api-docs")),
    ]
    for response in pages:
        assert response.status_code == 200, response.request["PATH_INFO"]
        assert inline_parts(response.content.decode()) == [], response.request["PATH_INFO"]


@pytest.mark.django_db
def test_api_docs_start_up_script_is_a_file(doctor_client):
    page = doctor_client.get(reverse("api-docs")).content.decode()
    script_url = re.search(r'<script src="([^"]*\?script[^"]*)"', page).group(1)
    script = doctor_client.get(script_url.replace("&amp;", "&"))
    assert script.status_code == 200 and "javascript" in script["Content-Type"]
    assert b"SwaggerUIBundle" in script.content

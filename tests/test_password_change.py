"""Passwords (issue 10, item 8): at least 12 characters, and everyone changes their own."""

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from tests.conftest import PASSWORD

NEW_PASSWORD = "amber lantern quay 58"


def test_eleven_characters_are_too_few_twelve_are_enough():
    with pytest.raises(ValidationError, match="at least 12 characters"):
        validate_password("kestrel-41b")
    validate_password("kestrel-41bx")


def change(client, old, new, again=None):
    return client.post(
        reverse("password_change"),
        {"old_password": old, "new_password1": new, "new_password2": again or new},
    )


def can_log_in(user, password):
    return Client().post(reverse("login"), {"username": user.username, "password": password}).status_code == 302


@pytest.mark.django_db
def test_every_page_links_to_the_password_change(radiographer_client, doctor_client, admin_role_client):
    for client in (radiographer_client, doctor_client, admin_role_client):
        page = client.get(reverse("home"), follow=True).content.decode()
        assert f'href="{reverse("password_change")}"' in page


@pytest.mark.django_db
def test_user_changes_their_own_password_and_stays_signed_in(doctor, doctor_client):
    form = doctor_client.get(reverse("password_change"))
    assert form.status_code == 200 and b"Change your password" in form.content
    response = change(doctor_client, PASSWORD, NEW_PASSWORD)
    assert response.status_code == 302 and response["Location"] == reverse("password_change_done")
    assert doctor_client.get(reverse("review_queue")).status_code == 200  # still signed in
    assert can_log_in(doctor, NEW_PASSWORD) and not can_log_in(doctor, PASSWORD)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "old, new, again, message",
    [
        ("not my password 12", NEW_PASSWORD, None, "Your old password was entered incorrectly"),
        (PASSWORD, "short pw 1", None, "at least 12 characters"),
        (PASSWORD, NEW_PASSWORD, "another one 1234", "didn’t match"),
    ],
    ids=["wrong-old", "too-short", "mismatch"],
)
def test_refused_change_leaves_the_password(doctor, doctor_client, old, new, again, message):
    response = change(doctor_client, old, new, again)
    assert response.status_code == 200 and message in response.content.decode()
    assert can_log_in(doctor, PASSWORD)


def test_anonymous_is_sent_to_log_in(client):
    response = client.get(reverse("password_change"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))

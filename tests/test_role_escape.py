"""The admin role manages users without becoming anyone else: not superusers, not other admins,
not its own roles, never another person's password (it sends a link), never another person's token."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core import mail
from django.test import Client
from rest_framework.test import APIClient

from radiology.models import ApiToken, AuditEvent
from tests.conftest import PASSWORD, logged_in
from tests.factories import UserFactory
from tests.support.api import token_client

USERS = "/django-admin/auth/user/"
NEW_PASSWORD = "a fresh passphrase 2026"


def change_form(user, **overrides):
    data = {
        "username": user.username,
        "is_active": "on",
        "groups": [g.pk for g in user.groups.all()],
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00",
    }
    return {**data, **overrides}


@pytest.fixture
def root(db):
    return UserFactory(username="root", is_superuser=True, is_staff=True, email="root@example.org")


@pytest.fixture
def other_admin(db):
    return UserFactory(username="admin2", role="admin", is_staff=True)


@pytest.mark.django_db
@pytest.mark.parametrize("target", ["root", "other_admin"])
def test_the_admin_role_cannot_edit_superusers_or_other_admins(request, admin_role_client, target):
    user = request.getfixturevalue(target)

    response = admin_role_client.post(f"{USERS}{user.pk}/change/", change_form(user, is_active=""))

    assert response.status_code == 403
    user.refresh_from_db()
    assert user.is_active
    page = admin_role_client.get(f"{USERS}{user.pk}/change/").content.decode()
    assert 'name="is_active"' not in page  # shown read-only, if at all


@pytest.mark.django_db
def test_the_admin_role_cannot_change_its_own_groups(admin_role_client, admin_user):
    doctor_group = Group.objects.get(name="doctor")
    page = admin_role_client.get(f"{USERS}{admin_user.pk}/change/").content.decode()
    assert 'name="groups"' not in page and 'name="is_staff"' not in page

    admin_role_client.post(f"{USERS}{admin_user.pk}/change/", change_form(admin_user, groups=[doctor_group.pk]))

    assert list(admin_user.groups.values_list("name", flat=True)) == ["admin"]


@pytest.mark.django_db
def test_the_admin_role_still_manages_a_doctors_roles(admin_role_client, doctor):
    radiographer_group = Group.objects.get(name="radiographer")

    response = admin_role_client.post(
        f"{USERS}{doctor.pk}/change/", change_form(doctor, groups=[radiographer_group.pk])
    )

    assert response.status_code == 302
    assert list(doctor.groups.values_list("name", flat=True)) == ["radiographer"]


@pytest.mark.django_db
def test_the_admin_role_cannot_set_anyones_password(admin_role_client, doctor):
    url = f"{USERS}{doctor.pk}/password/"

    assert admin_role_client.get(url).status_code == 403
    response = admin_role_client.post(url, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})

    assert response.status_code == 403
    doctor.refresh_from_db()
    assert doctor.check_password(PASSWORD) and not doctor.check_password(NEW_PASSWORD)
    assert url not in admin_role_client.get(f"{USERS}{doctor.pk}/change/").content.decode()


@pytest.mark.django_db
def test_the_admin_role_cannot_redirect_a_reset_link_by_changing_the_email(admin_role_client, doctor):
    doctor.email = "doctor@example.org"
    doctor.save()

    admin_role_client.post(f"{USERS}{doctor.pk}/change/", change_form(doctor, email="admin@evil.example"))

    doctor.refresh_from_db()
    assert doctor.email == "doctor@example.org"


def reset_link(message):
    return re.search(r"http://testserver(/reset/\S+/)", message.body).group(1)


@pytest.mark.django_db
def test_the_admin_role_sends_a_link_and_the_user_chooses_the_password(
    admin_role_client, admin_user, doctor, django_capture_on_commit_callbacks
):
    doctor.email = "doctor@example.org"
    doctor.save()

    with django_capture_on_commit_callbacks(execute=True):
        admin_role_client.post(USERS, {"action": "send_password_reset_link", "_selected_action": [doctor.pk]})

    (message,) = mail.outbox
    assert message.to == ["doctor@example.org"]
    assert AuditEvent.objects.filter(action="user.password_reset_sent", object_id=str(doctor.pk), actor=admin_user)
    doctor.refresh_from_db()
    assert doctor.check_password(PASSWORD)  # nothing changes until the user acts
    browser = Client()
    form = browser.get(reset_link(message), follow=True)
    browser.post(form.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    doctor.refresh_from_db()
    assert doctor.check_password(NEW_PASSWORD)
    again = browser.get(reset_link(message), follow=True)
    assert "no longer valid" in again.content.decode()  # the link works once


@pytest.mark.django_db
def test_the_admin_role_sends_no_link_to_a_superuser(admin_role_client, root):
    admin_role_client.post(USERS, {"action": "send_password_reset_link", "_selected_action": [root.pk]})

    assert mail.outbox == []


@pytest.mark.django_db
def test_a_new_account_gets_no_password_from_the_admin_role(admin_role_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_role_client.post(
            f"{USERS}add/",
            {"username": "newdoc", "email": "newdoc@example.org", "password1": "x" * 20, "password2": "x" * 20},
        )

    assert response.status_code == 302
    created = get_user_model().objects.get(username="newdoc")
    assert not created.has_usable_password()
    assert [m.to for m in mail.outbox] == [["newdoc@example.org"]]


@pytest.mark.django_db
def test_a_superuser_keeps_djangos_full_user_admin(root, doctor):
    client = logged_in(root)

    client.post(f"{USERS}{doctor.pk}/password/", {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})

    doctor.refresh_from_db()
    assert doctor.check_password(NEW_PASSWORD)


# --- tokens -------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("issuer", ["admin_user", "root"])
@pytest.mark.parametrize("person", ["doctor", "radiographer", "other_admin"])
def test_nobody_mints_a_token_for_another_person(request, issuer, person):
    target = request.getfixturevalue(person)

    response = token_client(request.getfixturevalue(issuer)).post("/api/v1/tokens/", {"user": target.pk})

    assert response.status_code == 403
    assert not ApiToken.objects.filter(user=target).exists()


@pytest.mark.django_db
def test_a_person_in_the_integration_group_is_still_a_person(admin_user, doctor):
    doctor.groups.add(Group.objects.get(name="integration"))

    response = token_client(admin_user).post("/api/v1/tokens/", {"user": doctor.pk})

    assert response.status_code == 403


@pytest.mark.django_db
def test_a_person_moved_into_the_integration_group_gets_no_token_from_others(
    admin_role_client, admin_user, radiographer
):
    integration = Group.objects.get(name="integration")
    admin_role_client.post(f"{USERS}{radiographer.pk}/change/", change_form(radiographer, groups=[integration.pk]))
    assert list(radiographer.groups.values_list("name", flat=True)) == ["integration"]

    response = token_client(admin_user).post("/api/v1/tokens/", {"user": radiographer.pk})

    assert response.status_code == 403  # the account still has its person's password
    assert not ApiToken.objects.filter(user=radiographer).exists()


@pytest.mark.django_db
def test_the_admin_role_issues_tokens_for_itself_and_for_integration_accounts(admin_user, integration_account):
    admin = token_client(admin_user)

    assert admin.post("/api/v1/tokens/", {"user": integration_account.pk}).status_code == 201
    assert admin.post("/api/v1/tokens/", {"user": admin_user.pk}).status_code == 201


@pytest.mark.django_db
def test_a_service_accounts_token_dies_if_the_account_is_made_a_person(admin_user, integration_account):
    key = token_client(admin_user).post("/api/v1/tokens/", {"user": integration_account.pk}).json()["token"]
    service = APIClient()
    service.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert service.get("/api/v1/scans/").status_code == 200

    integration_account.groups.add(Group.objects.get(name="doctor"))  # e.g. by a superuser, later

    assert service.get("/api/v1/queue/").status_code == 401


@pytest.mark.django_db
def test_a_persons_own_token_survives_a_change_of_role(doctor):
    client = token_client(doctor)

    doctor.groups.add(Group.objects.get(name="radiographer"))

    assert client.get("/api/v1/patients/").status_code == 200


@pytest.mark.django_db
def test_the_admin_role_creates_a_service_account_and_gives_it_a_token(admin_role_client, admin_user):
    admin_role_client.post(f"{USERS}add/", {"username": "pacs", "email": ""})
    account = get_user_model().objects.get(username="pacs")
    admin_role_client.post(
        f"{USERS}{account.pk}/change/", change_form(account, groups=[Group.objects.get(name="integration").pk])
    )

    response = token_client(admin_user).post("/api/v1/tokens/", {"user": account.pk, "name": "bridge"})

    assert mail.outbox == [] and not account.has_usable_password()
    assert response.status_code == 201

"""Model versions over the API: admins read them and activate one (audited)."""

import pytest
from rest_framework.test import APIClient

from classifier.models import ModelVersion
from radiology.models import AuditEvent
from tests.factories import ModelVersionFactory, UserFactory
from tests.support.api import error_of, token_client

URL = "/api/v1/model-versions/"


@pytest.mark.django_db
def test_an_admin_lists_and_reads_versions(admin_user):
    first = ModelVersionFactory(version="v1", threshold=0.4, is_active=True)
    ModelVersionFactory(version="v2")
    client = token_client(admin_user)

    listed = client.get(URL).json()
    detail = client.get(f"{URL}{first.pk}/").json()

    assert sorted(v["version"] for v in listed["results"]) == ["v1", "v2"]
    assert (detail["version"], detail["threshold"], detail["is_active"]) == ("v1", 0.4, True)


@pytest.mark.django_db
def test_an_admin_activates_a_version_and_it_is_audited(admin_user, loadable_files):
    old = ModelVersionFactory(version="v1", is_active=True)
    new = ModelVersionFactory(version="v2", **loadable_files)

    response = token_client(admin_user).post(f"{URL}{new.pk}/activate/")

    assert response.status_code == 200 and response.json()["is_active"] is True
    assert ModelVersion.active() == new
    old.refresh_from_db()
    assert not old.is_active
    event = AuditEvent.objects.get(action="model_version.activated", object_id=str(new.pk))
    assert (event.actor, event.before, event.after) == (admin_user, {"active": "v1"}, {"active": "v2"})


@pytest.mark.django_db
def test_unknown_version_is_404(admin_user):
    response = token_client(admin_user).post(f"{URL}999999/activate/")

    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["doctor", "radiographer", None])
def test_other_roles_neither_read_nor_activate(role):
    version = ModelVersionFactory()
    client = token_client(UserFactory(role=role))

    assert client.get(URL).status_code == 403
    assert client.get(f"{URL}{version.pk}/").status_code == 403
    assert client.post(f"{URL}{version.pk}/activate/").status_code == 403
    version.refresh_from_db()
    assert not version.is_active


@pytest.mark.django_db
def test_anonymous_gets_401():
    version = ModelVersionFactory()

    assert APIClient().get(URL).status_code == 401
    assert APIClient().post(f"{URL}{version.pk}/activate/").status_code == 401


def test_a_version_whose_files_are_missing_is_refused_with_409(admin_user):
    ModelVersionFactory(version="v1", is_active=True)
    broken = ModelVersionFactory(version="broken", artifact_path="missing/model.keras")
    response = token_client(admin_user).post(f"{URL}{broken.pk}/activate/")
    assert response.status_code == 409 and error_of(response)["code"] == "conflict"
    assert "cannot be activated" in error_of(response)["message"]
    assert ModelVersion.active().version == "v1"

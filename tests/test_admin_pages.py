"""The admin's failed-scans and model-versions pages: re-queue and activate, both audited."""

from django.urls import reverse

from classifier.models import ModelVersion
from radiology.models import AuditEvent, Scan
from tests.factories import ModelVersionFactory, PredictionFactory, ScanFactory


def test_failed_scans_are_listed_and_requeued(admin_role_client, admin_user, django_capture_on_commit_callbacks):
    failed = ScanFactory(status="failed", failure_reason="Model v1 cannot be loaded")
    ScanFactory(status="queued")
    page = admin_role_client.get(reverse("failed_scans")).content.decode()
    assert "Model v1 cannot be loaded" in page and reverse("requeue_scan", args=[failed.pk]) in page

    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_role_client.post(reverse("requeue_scan", args=[failed.pk]), follow=True)
    failed.refresh_from_db()
    assert failed.status == Scan.Status.QUEUED and failed.failure_reason == ""
    assert len(callbacks) == 1  # the prediction task is sent again once the change commits
    assert AuditEvent.objects.filter(action="scan.requeued", object_id=str(failed.pk), actor=admin_user).exists()
    assert b"No failed scans." in response.content
    assert f"Scan {failed.pk} is back in the queue." in [str(m) for m in response.context["messages"]]


def test_a_predicted_scan_cannot_be_requeued(admin_role_client):
    scan = PredictionFactory().scan
    response = admin_role_client.post(reverse("requeue_scan", args=[scan.pk]), follow=True)
    assert "A predicted scan cannot be re-queued." in [str(m) for m in response.context["messages"]]
    scan.refresh_from_db()
    assert scan.status == Scan.Status.PREDICTED


def test_model_versions_are_listed_and_activated(admin_role_client, admin_user, loadable_files):
    current = ModelVersionFactory(version="current", is_active=True)
    candidate = ModelVersionFactory(
        version="candidate",
        evaluation={"test": {"auc": 0.93, "sensitivity": 0.9, "specificity": 0.8}},
        **loadable_files,
    )
    page = admin_role_client.get(reverse("model_versions")).content.decode()
    assert (
        "candidate" in page and "AUC 0.930" in page and reverse("activate_model_version", args=[candidate.pk]) in page
    )
    assert reverse("activate_model_version", args=[current.pk]) not in page  # already active

    admin_role_client.post(reverse("activate_model_version", args=[candidate.pk]))
    candidate.refresh_from_db()
    current.refresh_from_db()
    assert candidate.is_active and not current.is_active
    event = AuditEvent.objects.get(action="model_version.activated")
    assert (event.actor, event.object_id, event.before, event.after) == (
        admin_user,
        str(candidate.pk),
        {"active": "current"},
        {"active": "candidate"},
    )


def test_the_users_link_goes_to_django_admin(admin_role_client):
    page = admin_role_client.get(reverse("dashboard")).content.decode()
    assert 'href="/django-admin/auth/user/"' in page
    assert admin_role_client.get("/django-admin/auth/user/").status_code == 200


def test_a_version_whose_files_are_missing_is_not_activated(admin_role_client):
    current = ModelVersionFactory(version="current", is_active=True)
    broken = ModelVersionFactory(version="broken", artifact_path="missing/model.keras")
    response = admin_role_client.post(reverse("activate_model_version", args=[broken.pk]), follow=True)
    assert "broken cannot be activated" in response.content.decode()
    assert ModelVersion.active() == current
    assert not AuditEvent.objects.filter(action="model_version.activated").exists()


def test_the_admin_role_cannot_make_anyone_superuser(admin_role_client, doctor):
    url = f"/django-admin/auth/user/{doctor.pk}/change/"
    page = admin_role_client.get(url).content.decode()
    assert 'name="groups"' in page  # roles are theirs to manage
    assert 'name="is_superuser"' not in page and 'name="user_permissions"' not in page
    admin_role_client.post(
        url,
        {
            "username": doctor.username,
            "is_superuser": "on",
            "is_active": "on",
            "groups": [doctor.groups.get().pk],
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00",
        },
    )
    doctor.refresh_from_db()
    assert not doctor.is_superuser

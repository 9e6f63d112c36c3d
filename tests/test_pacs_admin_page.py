"""The admin's PACS page: the poll's state, counts, conflicts (tried again on request), the outbox."""

import pytest
from django.urls import reverse
from django.utils import timezone

from radiology.models import AuditEvent
from radiology.pacs.models import OutboxItem, PacsInstance, PollState
from tests.conftest import logged_in


def record(outcome, n, reason="", patient_id="MRN-X"):
    return PacsInstance.objects.create(
        sop_instance_uid=f"2.25.{n}",
        study_instance_uid="2.25.1",
        series_instance_uid="2.25.2",
        patient_id=patient_id,
        outcome=outcome,
        reason=reason,
    )


@pytest.mark.parametrize("role", ["radiographer", "doctor", "outsider"])
def test_only_admins_see_the_pacs_page(role, request):
    client = logged_in(request.getfixturevalue(role))
    assert client.get(reverse("pacs_status")).status_code == 403


def test_the_page_shows_the_poll_counts_and_conflicts(admin_role_client, settings):
    settings.PACS_DICOMWEB_URL = "http://pacs.example:8042/dicom-web"
    PollState.objects.update_or_create(
        pk=1,
        defaults={
            "last_success_at": timezone.now(),
            "last_error": "ConnectionError: PACS refused",
            "last_error_at": timezone.now(),
        },
    )
    record("conflict", 1, "The instance's name differ from those of the patient with its Patient ID as MRN", "MRN-C")
    record("skipped", 2, "View position LL is a lateral view, not a frontal (PA or AP) one.")
    record("ingested", 3)

    page = admin_role_client.get(reverse("pacs_status")).content.decode()

    assert "http://pacs.example:8042/dicom-web" in page and "every 10 s" in page
    assert "ConnectionError: PACS refused" in page
    assert "MRN-C" in page and "name differ from those" in page and "View position LL is a lateral view" in page
    assert '<th scope="row">Conflict</th><td>1</td>' in page and '<th scope="row">Ingested</th><td>1</td>' in page


def test_without_a_pacs_the_page_says_so(admin_role_client, settings):
    settings.PACS_DICOMWEB_URL = ""
    page = admin_role_client.get(reverse("pacs_status")).content.decode()
    assert 'id="pacs-not-configured"' in page and "never" in page


def test_a_conflict_is_tried_again_on_request_and_audited(admin_role_client, admin_user):
    conflict = record("conflict", 1, "no Patient ID")
    ingested = record("ingested", 2)

    response = admin_role_client.post(reverse("pacs_retry_conflict", args=[conflict.pk]))
    assert response.status_code == 302
    assert not PacsInstance.objects.filter(pk=conflict.pk).exists()
    event = AuditEvent.objects.get(action="pacs.conflict_retried")
    assert event.actor == admin_user and event.before["sop_instance_uid"] == "2.25.1"

    refused = admin_role_client.post(reverse("pacs_retry_conflict", args=[ingested.pk]), follow=True)
    assert "Only conflicts are tried again" in refused.content.decode()
    assert PacsInstance.objects.filter(pk=ingested.pk).exists()


def test_the_page_shows_the_outbox_with_its_last_error(admin_role_client):
    from tests.factories import ScanFactory

    scan = ScanFactory(patient__mrn="MRN-OUTBOX")
    common = {"scan": scan, "study_instance_uid": "2.25.9", "series_instance_uid": "2.25.10"}
    OutboxItem.objects.create(kind="ai_report", sop_instance_uid="2.25.11", sent_at=timezone.now(), **common)
    OutboxItem.objects.create(
        kind="overlay",
        sop_instance_uid="2.25.12",
        attempts=3,
        last_error="The PACS did not take it: ConnectionError: refused",
        **common,
    )

    page = admin_role_client.get(reverse("pacs_status")).content.decode()

    assert '<strong id="outbox-sent">1</strong>' in page and '<strong id="outbox-waiting-count">1</strong>' in page
    assert "Grad-CAM overlay (secondary capture)" in page and "MRN-OUTBOX" in page
    assert "The PACS did not take it: ConnectionError: refused" in page

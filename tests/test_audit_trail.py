"""The audit trail: reads of patient data and refusals recorded, a hash chain that verify_audit
checks (edited, inserted and deleted events found), PostgreSQL refusing UPDATE and DELETE, and the
admin's audit page with filters and CSV export."""

import csv
import io
from contextlib import contextmanager

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.urls import reverse
from rest_framework.test import APIClient

from radiology.actions.audit import audit
from radiology.models import AuditChainHead, AuditEvent
from tests.factories import PatientFactory, PredictionFactory
from tests.support.api import error_of, token_client

on_postgresql = pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigger is PostgreSQL's")


def verify():
    """verify_audit's problems (an empty list when the chain is intact)."""
    errors = io.StringIO()
    try:
        call_command("verify_audit", stdout=io.StringIO(), stderr=errors)
    except CommandError:
        return errors.getvalue().splitlines() or ["failed"]
    return []


@contextmanager
def past_the_trigger():
    """Someone with the database's superuser: past the append-only trigger (rolled back with the test)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = replica")
        yield cursor
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = DEFAULT")


@pytest.fixture
def events(db, doctor):
    return [audit(doctor, f"test.event{i}", doctor, after={"n": i, "p": 0.5 + i}) for i in range(5)]


# --- the chain ----------------------------------------------------------------------------------


def test_each_event_carries_the_previous_ones_hash_and_the_chain_verifies(events):
    assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:-1]]
    assert all(len(e.hash) == 64 for e in events)
    assert verify() == []
    out = io.StringIO()
    call_command("verify_audit", stdout=out)
    assert "intact" in out.getvalue()


def test_an_edited_event_is_found(events):
    with past_the_trigger() as cursor:
        cursor.execute("UPDATE radiology_auditevent SET action = 'test.nothing' WHERE id = %s", [events[2].pk])

    assert verify() == [f"event {events[2].pk}: its content does not match its hash (edited, or inserted)"]


def test_an_edited_json_detail_is_found(events):
    with past_the_trigger():
        AuditEvent.objects.filter(pk=events[1].pk).update(after={"n": 1, "p": 0.6})

    assert [line.split(":")[0] for line in verify()] == [f"event {events[1].pk}"]


def test_a_deleted_event_is_found(events):
    with past_the_trigger() as cursor:
        cursor.execute("DELETE FROM radiology_auditevent WHERE id = %s", [events[2].pk])

    (problem,) = verify()
    assert problem.startswith(f"event {events[3].pk}: not chained") and f"after event {events[1].pk}" in problem


def test_events_deleted_from_the_end_are_found(events):
    with past_the_trigger() as cursor:
        cursor.execute("DELETE FROM radiology_auditevent WHERE id >= %s", [events[3].pk])

    (problem,) = verify()
    assert f"chain ends at event {events[2].pk}" in problem


def test_an_inserted_event_is_found(events, doctor):
    forged = AuditEvent(action="test.forged", object_type="User", object_id=str(doctor.pk), prev_hash=events[1].hash)
    forged.hash = "0" * 64  # without the key no valid hash can be made
    with past_the_trigger():
        AuditEvent.objects.bulk_create([forged])

    problems = verify()
    assert any(p.startswith(f"event {forged.pk}: its content does not match") for p in problems)


@on_postgresql
def test_postgresql_refuses_update_and_delete_of_an_event(events):
    for statement in (
        "UPDATE radiology_auditevent SET action = 'x' WHERE id = %s",
        "DELETE FROM radiology_auditevent WHERE id = %s",
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement, [events[0].pk])
    assert AuditEvent.objects.filter(pk=events[0].pk, action="test.event0").exists()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=events[0].pk).delete()


def test_the_chain_continues_after_a_rolled_back_event(events, doctor):
    def audited_then_failed():
        with transaction.atomic():
            audit(doctor, "test.rolled_back", doctor)
            raise RuntimeError

    with pytest.raises(RuntimeError):
        audited_then_failed()

    audit(doctor, "test.after", doctor)

    assert verify() == []
    assert AuditChainHead.objects.get().last_event_id == AuditEvent.objects.latest("pk").pk


# --- reads of patient data ----------------------------------------------------------------------


def reads(actor):
    return list(
        AuditEvent.objects.filter(action="patient_data.read", actor=actor)
        .order_by("pk")
        .values_list("object_type", "object_id", "after__view")
    )


@pytest.mark.django_db
def test_page_reads_of_patient_data_are_recorded_without_the_search_text(doctor, doctor_client):
    patient = PatientFactory(name="Zelda Quist", mrn="MRN-SECRET-9")
    scan = PredictionFactory(scan__patient=patient).scan

    doctor_client.post(reverse("patient_list"), {"q": "Zelda"}, follow=True)
    doctor_client.get(reverse("patient_detail", args=[patient.pk]))
    doctor_client.get(reverse("patient_history", args=[patient.pk]))
    doctor_client.get(reverse("review_queue"))
    doctor_client.get(reverse("review", args=[scan.pk]))

    assert reads(doctor) == [
        ("Patient", "", "patient_list"),
        ("Patient", str(patient.pk), "patient_detail"),
        ("Patient", str(patient.pk), "patient_history"),
        ("Scan", "", "review_queue"),
        ("Scan", str(scan.pk), "review"),
    ]
    trail = str(list(AuditEvent.objects.values()))
    assert "Zelda" not in trail and "MRN-SECRET-9" not in trail


@pytest.mark.django_db
def test_the_status_and_failed_scans_pages_are_reads(radiographer, radiographer_client, admin_user, admin_role_client):
    radiographer_client.get(reverse("scan_status"))
    admin_role_client.get(reverse("failed_scans"))

    assert reads(radiographer) == [("Scan", "", "scan_status")]
    assert reads(admin_user) == [("Scan", "", "failed_scans")]


@pytest.mark.django_db
def test_api_reads_of_patient_data_are_recorded(doctor):
    scan = PredictionFactory().scan
    client = token_client(doctor)

    client.get("/api/v1/patients/")
    client.post("/api/v1/patients/search/", {"query": "anything"}, format="json")
    client.get(f"/api/v1/patients/{scan.patient_id}/")
    client.get("/api/v1/scans/")
    client.get(f"/api/v1/scans/{scan.pk}/")
    client.get("/api/v1/queue/")

    assert reads(doctor) == [
        ("Patient", "", "api-patient-list"),
        ("Patient", "", "api-patient-search"),
        ("Patient", str(scan.patient_id), "api-patient-detail"),
        ("Scan", "", "api-scan-list"),
        ("Scan", str(scan.pk), "api-scan-detail"),
        ("Scan", "", "api-queue-list"),
    ]
    assert "anything" not in str(list(AuditEvent.objects.values()))


@pytest.mark.django_db
def test_a_failed_read_records_no_read(doctor):
    token_client(doctor).get("/api/v1/scans/999999/")

    assert reads(doctor) == []


# --- refusals -----------------------------------------------------------------------------------


def refusals():
    return list(
        AuditEvent.objects.filter(action="request.refused")
        .order_by("pk")
        .values_list("actor__username", "after__status", "after__path")
    )


@pytest.mark.django_db
def test_a_403_is_recorded(radiographer_client):
    assert radiographer_client.get(reverse("review_queue")).status_code == 403

    assert refusals() == [("radiographer1", 403, "/review/")]


@pytest.mark.django_db
def test_a_409_is_recorded(doctor):
    scan = PredictionFactory().scan
    client = token_client(doctor)
    client.post("/api/v1/reviews/", {"scan": scan.pk, "decision": "confirm"}, format="json")

    stale = client.post("/api/v1/reviews/", {"scan": scan.pk, "decision": "confirm"}, format="json")

    assert stale.status_code == 409
    assert refusals() == [("doctor1", 409, "/api/v1/reviews/")]


@pytest.mark.django_db
def test_a_429_is_recorded(monkeypatch, radiographer):
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"anon": "1/minute", "user": "1000/minute"})
    client = APIClient()
    for _ in range(2):
        response = client.post("/api/v1/auth/token/", {"username": "x", "password": "y"}, format="json")

    assert error_of(response)["status"] == 429
    assert refusals() == [(None, 429, "/api/v1/auth/token/")]


# --- the audit page -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_admin_filters_the_trail(admin_role_client, doctor, radiographer):
    audit(doctor, "scan.reviewed", None, object_type="Scan", object_id="7")
    audit(radiographer, "scan.uploaded", None, object_type="Scan", object_id="8")

    page = admin_role_client.get(reverse("audit_trail"), {"actor": "doctor1", "action": "scan."})

    assert page.status_code == 200
    assert [e.action for e in page.context["page"].object_list] == ["scan.reviewed"]
    by_record = admin_role_client.get(reverse("audit_trail"), {"object_type": "Scan", "object_id": "8"})
    assert [e.action for e in by_record.context["page"].object_list] == ["scan.uploaded"]


@pytest.mark.django_db
def test_an_invalid_filter_is_a_400_with_its_reason(admin_role_client):
    response = admin_role_client.get(reverse("audit_trail"), {"start": "2026-02-02", "end": "2026-01-01"})

    assert response.status_code == 400
    assert "The start date is after the end date." in response.content.decode()


@pytest.mark.django_db
def test_the_csv_export_has_the_selected_events_safe_for_spreadsheets(admin_role_client, admin_user, doctor):
    audit(doctor, "=HYPERLINK(evil)", None, object_type="Scan", object_id="7")
    audit(doctor, "scan.other", None)

    response = admin_role_client.get(reverse("audit_trail_csv"), {"object_id": "7"})

    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(r["actor"], r["action"], r["object_id"]) for r in rows] == [("doctor1", "'=HYPERLINK(evil)", "7")]
    assert len(rows[0]["hash"]) == 64
    assert AuditEvent.objects.filter(action="audit.exported", actor=admin_user, after={"filters": {"object_id": "7"}})


@pytest.mark.django_db
@pytest.mark.parametrize("client_fixture", ["doctor_client", "radiographer_client"])
def test_only_admins_see_the_trail(request, client_fixture):
    client = request.getfixturevalue(client_fixture)

    assert client.get(reverse("audit_trail")).status_code == 403
    assert client.get(reverse("audit_trail_csv")).status_code == 403


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_keep_one_unbroken_chain():
    import threading

    start = threading.Barrier(6)

    def writer(n):
        try:
            start.wait()
            for i in range(15):
                audit(None, "test.concurrent", None, after={"writer": n, "i": i})
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert AuditEvent.objects.filter(action="test.concurrent").count() == 90
    assert verify() == []

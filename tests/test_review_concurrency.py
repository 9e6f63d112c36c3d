"""Reviews under concurrency: optimistic `supersedes`, settled by PostgreSQL with real threads.

Each thread has its own database connection (Django's are per thread), so the requests race in
the database exactly as gunicorn's workers would.
"""

import threading

import pytest
from django.db import IntegrityError, connection, transaction
from django.urls import reverse

from radiology.actions import clinical
from radiology.models import AuditEvent, Review, ReviewWeek, ReviewWeekScore, ReviewWeekTurnaround, Scan
from radiology.outcomes import rebuild_review_summary
from tests.conftest import logged_in
from tests.factories import ModelVersionFactory, PredictionFactory, UserFactory
from tests.support.api import token_client

URL = "/api/v1/reviews/"


def race(calls):
    """Run the calls in threads released together; -> their results, in order."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(index, call):
        try:
            barrier.wait(timeout=30)
            results[index] = call()
        except BaseException as error:  # reported by the assertion below, not lost in the thread
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(isinstance(result, BaseException) for result in results), results
    return results


@pytest.fixture
def predicted(transactional_db):
    return PredictionFactory(probability=0.9).scan  # the model said PNEUMONIA


def doctors(n):
    return [token_client(UserFactory(username=f"doctor-{i}", role="doctor")) for i in range(n)]


def post_review(client, scan, **body):
    return lambda: client.post(URL, {"scan": scan.pk, "decision": "confirm", **body}, format="json")


def test_of_ten_concurrent_first_reviews_exactly_one_is_accepted(predicted):
    clients = doctors(10)

    responses = race([post_review(client, predicted, supersedes=None) for client in clients])

    codes = sorted(response.status_code for response in responses)
    assert codes == [201] + [409] * 9
    winner = next(response.json() for response in responses if response.status_code == 201)
    for refused in (response.json() for response in responses if response.status_code == 409):
        assert refused["error"]["code"] == "conflict"
        assert refused["latest_review"]["id"] == winner["id"]
    assert list(Review.objects.filter(scan=predicted).values_list("pk", flat=True)) == [winner["id"]]
    assert AuditEvent.objects.filter(action="scan.reviewed", object_id=str(predicted.pk)).count() == 1


def test_of_concurrent_corrections_of_the_same_review_exactly_one_is_accepted(predicted):
    first = token_client(UserFactory(username="first", role="doctor")).post(
        URL, {"scan": predicted.pk, "decision": "confirm"}, format="json"
    )
    clients = doctors(6)

    responses = race(
        [
            post_review(client, predicted, decision="override", note="Clear.", supersedes=first.json()["id"])
            for client in clients
        ]
    )

    assert sorted(response.status_code for response in responses) == [201] + [409] * 5
    assert Review.objects.filter(scan=predicted).count() == 2


@pytest.mark.django_db
def test_a_stale_resend_is_refused_and_the_label_stays(doctor):
    scan = PredictionFactory(probability=0.9).scan
    client = token_client(doctor)
    first = client.post(URL, {"scan": scan.pk, "decision": "confirm", "supersedes": None}, format="json")
    assert first.status_code == 201

    # The same page's second submission: an override decided before the confirm was seen.
    stale = client.post(
        URL, {"scan": scan.pk, "decision": "override", "note": "Clear lungs.", "supersedes": None}, format="json"
    )

    assert stale.status_code == 409
    assert stale.json()["latest_review"]["id"] == first.json()["id"]
    assert scan.latest_review().final_label == "PNEUMONIA"
    assert Review.objects.filter(scan=scan).count() == 1


@pytest.mark.django_db
def test_a_correction_naming_the_latest_review_is_accepted_and_names_it(doctor):
    scan = PredictionFactory(probability=0.9).scan
    client = token_client(doctor)
    first = client.post(URL, {"scan": scan.pk, "decision": "confirm"}, format="json").json()

    correction = client.post(
        URL, {"scan": scan.pk, "decision": "override", "note": "Clear.", "supersedes": first["id"]}, format="json"
    )

    assert correction.status_code == 201
    assert correction.json()["supersedes"] == first["id"]
    assert scan.latest_review().final_label == "NORMAL"
    event = AuditEvent.objects.get(action="scan.review_corrected", object_id=str(scan.pk))
    assert event.after["supersedes"] == first["id"]
    # Naming a review that is no longer the latest: 409, nothing changes.
    again = client.post(URL, {"scan": scan.pk, "decision": "confirm", "supersedes": first["id"]}, format="json")
    assert again.status_code == 409
    assert again.json()["latest_review"]["id"] == correction.json()["id"]
    assert scan.latest_review().final_label == "NORMAL"


@pytest.mark.django_db
def test_the_database_itself_refuses_a_second_first_review(doctor):
    scan = PredictionFactory().scan
    Review.objects.create(scan=scan, doctor=doctor, decision="confirm", final_label="PNEUMONIA")

    with pytest.raises(IntegrityError), transaction.atomic():
        Review.objects.create(scan=scan, doctor=doctor, decision="confirm", final_label="PNEUMONIA")


@pytest.mark.django_db
def test_the_page_shows_what_was_recorded_meanwhile_and_keeps_the_note(doctor_client):
    scan = PredictionFactory(probability=0.9).scan
    other = UserFactory(username="other-doctor", role="doctor")
    page = doctor_client.get(reverse("review", args=[scan.pk])).content.decode()
    assert 'name="supersedes"' in page and 'name="supersedes" value=' not in page  # no review yet
    logged_in(other).post(reverse("review", args=[scan.pk]), {"decision": "confirm"})
    recorded = Review.objects.get(scan=scan)

    response = doctor_client.post(
        reverse("review", args=[scan.pk]),
        {"decision": "override", "note": "Lungs clear on the lateral.", "supersedes": ""},
    )

    assert response.status_code == 409
    page = response.content.decode()
    assert "another review was recorded while this page was open" in page
    assert "other-doctor" in page and "Lungs clear on the lateral." in page
    assert f'name="supersedes" value="{recorded.pk}"' in page
    assert list(Review.objects.filter(scan=scan)) == [recorded]
    assert Scan.objects.get(pk=scan.pk).latest_review().final_label == "PNEUMONIA"


def test_concurrent_reviews_of_scans_counted_in_the_same_summary_rows_all_add_up(transactional_db):
    """Eight doctors at once: four first reviews and four corrections, all of one model version, week
    and score bin, so that every transaction increments (or moves between) the same summary rows."""
    version = ModelVersionFactory(version="v1", threshold=0.5)
    scans = [PredictionFactory(model_version=version, probability=0.9).scan for _ in range(8)]
    reviewer = UserFactory(username="first", role="doctor")
    earlier = {scan.pk: clinical.review_scan(reviewer, scan, "confirm") for scan in scans[4:]}
    actors = [UserFactory(username=f"doctor-{i}", role="doctor") for i in range(8)]

    def review(actor, scan):
        if scan.pk in earlier:
            return lambda: clinical.review_scan(actor, scan, "override", "Clear.", supersedes=earlier[scan.pk])
        return lambda: clinical.review_scan(actor, scan, "confirm")

    race([review(actor, scan) for actor, scan in zip(actors, scans, strict=True)])

    cells = dict(ReviewWeek.objects.values_list("actual_positive", "n"))
    assert cells == {True: 4, False: 4}  # the corrected ones moved to "actual normal"
    assert list(ReviewWeekScore.objects.values_list("positives", "negatives")) == [(4, 4)]
    for measure in ReviewWeekTurnaround.Measure.values:
        assert sum(ReviewWeekTurnaround.objects.filter(measure=measure).values_list("n", flat=True)) == 8

    def summary():
        return [
            sorted(model.objects.values_list(*[f.attname for f in model._meta.fields if f.name != "id"]))
            for model in (ReviewWeek, ReviewWeekScore, ReviewWeekTurnaround)
        ]

    maintained = summary()
    rebuild_review_summary()
    assert summary() == maintained

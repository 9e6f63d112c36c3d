"""The shadow challenger: one at a time, never active, started and ended by admins (audited), and run
after the champion's prediction commits, without ever delaying, changing or failing it."""

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse

from classifier.models import ModelVersion
from radiology import shadow
from radiology.actions import clinical
from radiology.models import AuditEvent, ChallengerPrediction, Prediction, Scan
from radiology.tasks import predict_scan, predict_with_challenger
from tests.factories import ModelVersionFactory, UserFactory
from tests.support.api import error_of, token_client
from tests.support.images import chest_like_pixels, png_bytes

URL = "/api/v1/model-versions/"


@pytest.fixture
def quiet_queue(monkeypatch):
    """Uploads commit without sending tasks: the test runs the task itself."""
    monkeypatch.setattr(clinical, "enqueue_prediction", lambda scan_id: None)


@pytest.fixture
def sent_to_challenger(monkeypatch):
    """The challenger tasks sent, as (args, queue), instead of going to the broker."""
    sent = []
    monkeypatch.setattr(
        predict_with_challenger, "apply_async", lambda args, queue, retry: sent.append((tuple(args), queue))
    )
    return sent


@pytest.fixture
def challenger(model_version, loadable_files):
    """The active tiny model's files at another threshold, made the challenger."""
    version = ModelVersionFactory(version="tiny-challenger", threshold=0.05, **loadable_files)
    version.start_challenge()
    return version


def upload(user, patient, seed):
    return clinical.upload_scan(user, patient, f"chest-{seed}.png", png_bytes(chest_like_pixels(seed=seed))).scan


# --- one challenger, never the active version ---------------------------------------------------------------


@pytest.mark.django_db
def test_the_database_allows_one_challenger_and_never_an_active_one():
    first, second = ModelVersionFactory(), ModelVersionFactory()
    first.start_challenge()
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.filter(pk=second.pk).update(is_challenger=True, challenger_since=first.challenger_since)
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.filter(pk=first.pk).update(is_active=True)
    assert list(ModelVersion.objects.filter(is_challenger=True)) == [first]


@pytest.mark.django_db
def test_an_admin_starts_and_ends_a_challenge_audited(admin_user, loadable_files):
    active = ModelVersionFactory(version="v1", is_active=True)
    candidate = ModelVersionFactory(version="v2", **loadable_files)
    client = token_client(admin_user)

    started = client.post(f"{URL}{candidate.pk}/challenger/")

    assert started.status_code == 200
    assert started.json()["is_challenger"] is True and started.json()["challenger_since"]
    assert ModelVersion.challenger() == candidate and ModelVersion.active() == active
    event = AuditEvent.objects.get(action="model_version.challenger_started", object_id=str(candidate.pk))
    assert (event.actor, event.after) == (admin_user, {"challenger": "v2", "active": "v1"})

    ended = client.delete(f"{URL}{candidate.pk}/challenger/")

    assert ended.status_code == 200 and ended.json()["is_challenger"] is False
    assert ModelVersion.challenger() is None
    candidate.refresh_from_db()
    assert candidate.challenger_since is not None  # its comparison stays reachable
    assert AuditEvent.objects.filter(action="model_version.challenger_ended", actor=admin_user).count() == 1


@pytest.mark.django_db
def test_refusals_change_nothing(admin_user, loadable_files):
    active = ModelVersionFactory(version="v1", is_active=True, **loadable_files)
    current = ModelVersionFactory(version="v2", **loadable_files)
    other = ModelVersionFactory(version="v3", **loadable_files)
    broken = ModelVersionFactory(version="broken", artifact_path="missing/model.keras")
    client = token_client(admin_user)
    assert client.post(f"{URL}{current.pk}/challenger/").status_code == 200

    cases = {
        "active": client.post(f"{URL}{active.pk}/challenger/"),
        "second": client.post(f"{URL}{other.pk}/challenger/"),
        "again": client.post(f"{URL}{current.pk}/challenger/"),
        "broken": client.post(f"{URL}{broken.pk}/challenger/"),
        "end not challenger": client.delete(f"{URL}{other.pk}/challenger/"),
        "activate challenger": client.post(f"{URL}{current.pk}/activate/"),
    }

    messages = {name: error_of(response)["message"] for name, response in cases.items()}
    assert all(response.status_code == 409 for response in cases.values())
    assert {error_of(response)["code"] for response in cases.values()} == {"conflict"}
    assert "is active" in messages["active"]
    assert "v2 is the challenger: end its challenge" in messages["second"]
    assert "cannot be the challenger" in messages["broken"]
    assert "is not the challenger" in messages["end not challenger"]
    assert "promote it after reading its comparison" in messages["activate challenger"]
    assert ModelVersion.challenger() == current and ModelVersion.active() == active
    assert AuditEvent.objects.filter(action__startswith="model_version.").count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["doctor", "radiographer", None])
def test_other_roles_cannot_start_or_end_a_challenge(role):
    version = ModelVersionFactory()
    client = token_client(UserFactory(role=role))
    assert client.post(f"{URL}{version.pk}/challenger/").status_code == 403
    assert client.delete(f"{URL}{version.pk}/challenger/").status_code == 403
    assert ModelVersion.challenger() is None


def test_the_model_versions_page_starts_and_ends_a_challenge(admin_role_client, admin_user, loadable_files):
    ModelVersionFactory(version="v1", is_active=True)
    candidate = ModelVersionFactory(version="v2", **loadable_files)
    page = admin_role_client.get(reverse("model_versions")).content.decode()
    assert reverse("start_challenger", args=[candidate.pk]) in page

    admin_role_client.post(reverse("start_challenger", args=[candidate.pk]))

    page = admin_role_client.get(reverse("model_versions")).content.decode()
    assert "Challenger" in page and reverse("end_challenger", args=[candidate.pk]) in page
    assert reverse("model_comparison", args=[candidate.pk]) in page
    assert reverse("activate_model_version", args=[candidate.pk]) not in page  # promoted, not activated

    admin_role_client.post(reverse("end_challenger", args=[candidate.pk]))
    assert ModelVersion.challenger() is None
    assert AuditEvent.objects.filter(actor=admin_user, action="model_version.challenger_ended").exists()


# --- the shadow run ---------------------------------------------------------------------------------------------


def test_the_challenger_is_sent_only_once_the_champions_prediction_commits(
    radiographer, patient, challenger, quiet_queue, sent_to_challenger, django_capture_on_commit_callbacks, settings
):
    settings.CHALLENGER_QUEUE = "challenger-test"
    scan = upload(radiographer, patient, 1)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert predict_scan.apply(args=[scan.pk]).get() == "predicted"
        assert sent_to_challenger == []  # nothing before the champion's transaction commits
        assert Prediction.objects.filter(scan=scan).exists()
    for callback in callbacks:
        callback()

    assert sent_to_challenger == [((scan.pk, challenger.pk), "challenger-test")]


def test_the_challenger_predicts_apart_at_its_own_threshold(
    radiographer,
    patient,
    challenger,
    model_version,
    quiet_queue,
    sent_to_challenger,
    django_capture_on_commit_callbacks,
):
    scans = [upload(radiographer, patient, seed) for seed in range(3)]
    with django_capture_on_commit_callbacks(execute=True):
        for scan in scans:
            predict_scan.apply(args=[scan.pk])
    champion = {p.scan_id: (p.probability, p.label, p.model_version_id) for p in Prediction.objects.all()}

    for args, _ in sent_to_challenger:
        assert predict_with_challenger.apply(args=args).get() == "predicted"
    assert predict_with_challenger.apply(args=sent_to_challenger[0][0]).get() == "already predicted"

    shadows = ChallengerPrediction.objects.filter(model_version=challenger)
    assert sorted(s.scan_id for s in shadows) == sorted(scan.pk for scan in scans)
    for shadow_prediction in shadows:
        probability, _, version_id = champion[shadow_prediction.scan_id]
        assert version_id == model_version.pk
        assert shadow_prediction.probability == pytest.approx(probability, abs=1e-5)  # same files
        expected = "PNEUMONIA" if shadow_prediction.probability >= 0.05 else "NORMAL"
        assert (shadow_prediction.threshold, shadow_prediction.label) == (0.05, expected)
    assert {p.scan_id: (p.probability, p.label, p.model_version_id) for p in Prediction.objects.all()} == champion


def test_the_scan_record_and_review_page_never_show_the_challenger(
    radiographer,
    doctor,
    doctor_client,
    patient,
    challenger,
    quiet_queue,
    sent_to_challenger,
    django_capture_on_commit_callbacks,
):
    scan = upload(radiographer, patient, 1)
    with django_capture_on_commit_callbacks(execute=True):
        predict_scan.apply(args=[scan.pk])
    predict_with_challenger.apply(args=sent_to_challenger[0][0])
    assert ChallengerPrediction.objects.filter(scan=scan).exists()

    record = token_client(doctor).get(f"/api/v1/scans/{scan.pk}/").content.decode()
    review_page = doctor_client.get(reverse("review", args=[scan.pk])).content.decode()

    for text in (record, review_page):
        assert "tiny-challenger" not in text and "0.05" not in text
    assert "challenger" not in record
    assert '"probability"' in record  # the champion's prediction is there


@pytest.mark.parametrize("breakage", ["missing files", "model raises"])
def test_a_failing_challenger_leaves_the_champion_untouched(
    radiographer,
    patient,
    model_version,
    loadable_files,
    quiet_queue,
    sent_to_challenger,
    django_capture_on_commit_callbacks,
    monkeypatch,
    breakage,
):
    from classifier import registry

    files = {"artifact_path": "missing/model.keras"} if breakage == "missing files" else loadable_files
    broken = ModelVersionFactory(version="broken-challenger", **files)
    broken.start_challenge()  # (the files went missing after the challenge began)
    scan = upload(radiographer, patient, 1)
    with django_capture_on_commit_callbacks(execute=True):
        assert predict_scan.apply(args=[scan.pk]).get() == "predicted"
    prediction = Prediction.objects.get(scan=scan)
    before = (prediction.probability, prediction.label, prediction.model_version_id)
    if breakage == "model raises":

        def crashing_model(version):
            raise RuntimeError("the challenger's model crashed")

        monkeypatch.setattr(registry, "get_predictor", crashing_model)

    assert predict_with_challenger.apply(args=sent_to_challenger[0][0]).get() == "failed"

    scan.refresh_from_db()
    prediction.refresh_from_db()
    assert scan.status == Scan.Status.PREDICTED and scan.failure_reason == ""
    assert (prediction.probability, prediction.label, prediction.model_version_id) == before
    assert not ChallengerPrediction.objects.exists()


def test_a_broker_outage_for_the_challenger_does_not_touch_the_champion(
    radiographer, patient, challenger, quiet_queue, django_capture_on_commit_callbacks, monkeypatch
):
    def broker_down(*args, **kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(predict_with_challenger, "apply_async", broker_down)
    scans = [upload(radiographer, patient, seed) for seed in range(2)]
    with django_capture_on_commit_callbacks(execute=True):
        assert predict_scan.apply(args=[scans[0].pk]).get() == "predicted"
    assert Prediction.objects.count() == 2  # the whole batch recorded, the challenger's miss aside
    assert all(Scan.objects.get(pk=s.pk).status == Scan.Status.PREDICTED for s in scans)


def test_a_challenge_ended_before_its_task_runs_predicts_nothing(
    radiographer, patient, challenger, quiet_queue, sent_to_challenger, django_capture_on_commit_callbacks
):
    scan = upload(radiographer, patient, 1)
    with django_capture_on_commit_callbacks(execute=True):
        predict_scan.apply(args=[scan.pk])
    challenger.end_challenge()

    assert predict_with_challenger.apply(args=sent_to_challenger[0][0]).get() == "no longer the challenger"
    assert not ChallengerPrediction.objects.exists()


@pytest.mark.django_db
def test_no_challenger_sends_nothing(sent_to_challenger):
    assert shadow.send_to_challenger(12345) is False
    assert sent_to_challenger == []

"""The challenger with a real Celery worker, over the API: a version recorded by calibrate_model is
made the challenger; scans are uploaded, predicted by both (the challenger on its own queue) and
reviewed; the comparison covers them all and agrees with the scans' own predictions."""

import pytest
from PIL import Image

from classifier.registry import calibrate_model
from radiology.models import ChallengerPrediction, Scan
from tests.support.api import token_client
from tests.support.images import png_bytes
from tests.support.tiny_model import generated_set
from tests.support.worker import CeleryWorker, publishing_to, wait_until, worker_for_tests

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

SCANS = 6
TIMEOUT = 120  # seconds: a cold worker loads TensorFlow and the model first


class BothQueuesWorker(CeleryWorker):
    """As `make run`'s worker: the champion's queue and the challenger's."""

    def command(self):
        return [*super().command(), "-Q", "celery,challenger"]


@pytest.fixture
def worker(tmp_path_factory):
    worker = worker_for_tests(tmp_path_factory.mktemp("challenger-logs"), tmp_path_factory.mktemp("challenger-media"))
    worker.__class__ = BothQueuesWorker
    worker.extra_env["CHALLENGER_QUEUE"] = "challenger"
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def calibrated(model_version, tmp_path):
    """calibrate_model on a labeled sample of generated images: a new, inactive version."""
    images, labels = generated_set(40, seed=11)
    for i, (pixels, label) in enumerate(zip(images, labels, strict=True)):
        folder = tmp_path / "sample" / ("PNEUMONIA" if label else "NORMAL")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(folder / f"img{i}.png")
    return calibrate_model(tmp_path / "sample")


def test_a_calibrated_challenger_is_compared_on_every_reviewed_scan(
    settings, worker, calibrated, model_version, patient, radiographer, doctor, admin_user
):
    settings.MEDIA_ROOT = worker.media_root
    admin, uploader, reviewer = token_client(admin_user), token_client(radiographer), token_client(doctor)
    assert admin.post(f"/api/v1/model-versions/{calibrated.pk}/challenger/").status_code == 200

    with publishing_to(worker.broker_url):
        ids = [
            uploader.post("/api/v1/scans/", {"patient": patient.pk, "image": _file(seed)}, format="multipart").json()[
                "id"
            ]
            for seed in range(SCANS)
        ]
    wait_until(
        lambda: ChallengerPrediction.objects.filter(scan_id__in=ids).count() == SCANS,
        TIMEOUT,
        lambda: f"Not every scan was predicted by both models:\n{worker.log_tail()}",
    )
    assert "Task radiology.tasks.predict_with_challenger[" in worker.log_text()

    records = {scan_id: reviewer.get(f"/api/v1/scans/{scan_id}/").json() for scan_id in ids}
    for number, scan_id in enumerate(ids):
        decision = "override" if number % 3 == 0 else "confirm"
        answer = reviewer.post(
            "/api/v1/reviews/", {"scan": scan_id, "decision": decision, "note": "checked"}, format="json"
        )
        assert answer.status_code == 201, answer.content
    assert Scan.objects.filter(pk__in=ids, status=Scan.Status.REVIEWED).count() == SCANS

    comparison = admin.get(f"/api/v1/model-versions/{calibrated.pk}/comparison/").json()

    assert comparison["n"] == SCANS and sorted(case["scan"] for case in comparison["cases"]) == sorted(ids)
    assert comparison["champion"]["version"] == model_version.version
    assert comparison["challenger"]["version"] == calibrated.version
    assert comparison["challenger"]["threshold"] == calibrated.threshold
    for case in comparison["cases"]:
        prediction = records[case["scan"]]["prediction"]
        assert case["champion"] == {"probability": prediction["probability"], "label": prediction["label"]}
        for side in ("champion", "challenger"):
            threshold = comparison[side]["threshold"]
            expected = "PNEUMONIA" if case[side]["probability"] >= threshold else "NORMAL"
            assert case[side]["label"] == expected
    for side in ("champion", "challenger"):
        right = sum(case[side]["label"] == case["final_label"] for case in comparison["cases"])
        assert comparison[side]["accuracy"]["value"] == pytest.approx(right / SCANS)
    differ = sum(case["champion"]["label"] != case["challenger"]["label"] for case in comparison["cases"])
    assert comparison["disagreements"] == differ


def _file(seed):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(f"chest-{seed}.png", png_bytes(seed=seed), content_type="image/png")

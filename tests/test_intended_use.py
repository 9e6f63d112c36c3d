"""The worker stores an intended-use assessment with every prediction."""

import datetime

import pytest
from django.utils import timezone

from radiology.actions import clinical
from radiology.models import AuditEvent, Prediction
from radiology.tasks import predict_scan
from tests.factories import PatientFactory
from tests.support.images import chest_like_pixels, dicom_bytes, png_bytes

CHILDREN = {"min_age_years": 1, "max_age_years": 5, "source": "test"}


@pytest.fixture
def quiet_queue(monkeypatch):
    monkeypatch.setattr(clinical, "enqueue_prediction", lambda scan_id: None)


@pytest.fixture
def children_model(model_version):
    """The tiny model (no image statistics) declaring the bundled model's population."""
    model_version.metadata = {**model_version.metadata, "intended_use": {"population": CHILDREN}}
    model_version.save(update_fields=["metadata"])
    return model_version


def years_ago(years):
    today = timezone.localdate()
    return today.replace(year=today.year - years)


def predict(user, patient, data, name="chest.png"):
    scan = clinical.upload_scan(user, patient, name, data).scan
    assert predict_scan.apply(args=[scan.pk]).get() == "predicted"
    return Prediction.objects.get(scan=scan)


def test_a_child_is_within_and_the_missing_image_check_is_recorded_as_no_score(
    radiographer, children_model, quiet_queue
):
    child = PatientFactory(birth_date=years_ago(3))
    prediction = predict(radiographer, child, png_bytes(chest_like_pixels(seed=1)))
    assert prediction.intended_use == {"within": True, "reasons": [], "score": None}
    assert not prediction.outside_intended_use and not prediction.image_checked


def test_an_adult_is_flagged_by_age_and_still_predicted(radiographer, children_model, quiet_queue):
    adult = PatientFactory(birth_date=years_ago(40))
    prediction = predict(radiographer, adult, png_bytes(chest_like_pixels(seed=2)))
    assert prediction.intended_use == {"within": False, "reasons": ["age"], "score": None}
    assert prediction.outside_intended_use
    assert prediction.intended_use_reasons_text == "the patient's age is outside the ages the model was trained on"
    assert 0 <= prediction.probability <= 1 and prediction.heatmap
    event = AuditEvent.objects.get(action="scan.predicted", object_id=str(prediction.scan_id))
    assert event.after["intended_use"] == prediction.intended_use


def test_the_age_is_taken_on_the_dicom_study_date(radiographer, children_model, quiet_queue):
    # Eleven years old today, three on the day of the study.
    patient = PatientFactory(mrn="MRN-DCM-1", birth_date=datetime.date(2015, 6, 1))
    data = dicom_bytes(patient_id="MRN-DCM-1", birth_date="20150601", study_date="20180601", view_position="PA")
    assert predict(radiographer, patient, data, "study.dcm").intended_use["within"] is True


def test_a_lateral_dicom_view_is_flagged(radiographer, children_model, quiet_queue):
    patient = PatientFactory(mrn="MRN-DCM-1", birth_date=years_ago(2))
    data = dicom_bytes(patient_id="MRN-DCM-1", view_position="LL", body_part="CHEST")
    assert predict(radiographer, patient, data, "lateral.dcm").intended_use["reasons"] == ["view"]


def test_a_model_without_a_declared_population_checks_no_age(radiographer, model_version, quiet_queue):
    adult = PatientFactory(birth_date=years_ago(60))
    assert predict(radiographer, adult, png_bytes(chest_like_pixels(seed=4))).intended_use["within"] is True


def test_the_heatmap_is_as_strong_as_the_probability():
    import cv2
    import numpy as np

    from classifier.explain import heatmap_png

    heat = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)

    def opacity(strength):
        png = heatmap_png(heat, strength=strength)
        return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)[:, :, 3]

    assert opacity(1.0).max() == 255
    assert opacity(0.1).max() == round(0.1 * 255)
    assert opacity(0.0).max() == 0


def test_the_worker_draws_a_faint_heatmap_for_an_unlikely_scan(radiographer, model_version, quiet_queue, monkeypatch):
    import cv2
    import numpy as np

    from classifier.inference import Predictor

    monkeypatch.setattr(Predictor, "predict_proba", lambda self, images: np.full(len(images), 0.04, np.float32))
    prediction = predict(radiographer, PatientFactory(birth_date=years_ago(3)), png_bytes(chest_like_pixels(seed=7)))
    rgba = cv2.imdecode(np.frombuffer(prediction.heatmap.read(), np.uint8), cv2.IMREAD_UNCHANGED)
    assert prediction.probability == pytest.approx(0.04)
    assert rgba[:, :, 3].max() <= round(0.04 * 255)

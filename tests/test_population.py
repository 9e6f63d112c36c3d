"""A site widens the model's population only through a recorded, audited model version."""

import pytest
from django.core.management import CommandError, call_command

from classifier.models import ModelVersion
from radiology.models import AuditEvent, Prediction
from tests.factories import PatientFactory
from tests.support.images import chest_like_pixels, png_bytes
from tests.test_intended_use import CHILDREN, predict, years_ago  # noqa: F401 (the helpers)


@pytest.fixture
def quiet_queue(monkeypatch):
    from radiology.actions import clinical

    monkeypatch.setattr(clinical, "enqueue_prediction", lambda scan_id: None)


def test_a_wider_population_is_a_new_audited_version_that_the_check_then_reads(
    radiographer, model_version, quiet_queue
):
    model_version.metadata = {**model_version.metadata, "intended_use": {"population": CHILDREN}}
    model_version.save(update_fields=["metadata"])
    teenager = PatientFactory(birth_date=years_ago(12))
    assert predict(radiographer, teenager, png_bytes(chest_like_pixels(seed=1))).intended_use["reasons"] == ["age"]

    with pytest.raises(CommandError, match="Say why the population changes"):
        call_command("set_population", ages="1-17", reason=" ")
    assert ModelVersion.objects.count() == 1

    call_command("set_population", ages="1-17", reason="validated on 400 of our patients aged 6-17", activate=True)
    widened = ModelVersion.active()
    assert widened.parent == model_version and widened.sha256 == model_version.sha256
    assert widened.metadata["intended_use"]["population"]["max_age_years"] == 17
    event = AuditEvent.objects.get(action="model_version.population_changed")
    assert event.before["population"] == CHILDREN and event.after["population"]["max_age_years"] == 17
    prediction = predict(radiographer, teenager, png_bytes(chest_like_pixels(seed=2)))
    assert prediction.intended_use["within"] is True and prediction.model_version == widened
    assert Prediction.objects.count() == 2  # the first scan keeps its assessment under the first version

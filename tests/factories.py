import datetime

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from radiology.models import Patient


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("correct horse battery")

    @factory.post_generation
    def role(user, create, extracted, **kwargs):
        if extracted:
            user.groups.add(Group.objects.get(name=extracted))


class PatientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Patient

    mrn = factory.Sequence(lambda n: f"MRN{n:06d}")
    name = factory.Faker("name")
    birth_date = datetime.date(2021, 3, 4)
    sex = "F"


class ModelVersionFactory(factory.django.DjangoModelFactory):
    """A registry row only (no model file): for tests of what is built on predictions."""

    class Meta:
        model = "classifier.ModelVersion"

    version = factory.Sequence(lambda n: f"test-model-{n}")
    artifact_path = "nonexistent.keras"
    sha256 = "0" * 64
    threshold = 0.5


class ScanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "radiology.Scan"

    patient = factory.SubFactory(PatientFactory)
    image = factory.django.FileField(filename="scan.png", data=b"not read by these tests")
    image_format = "png"
    original_filename = "scan.png"
    sha256 = factory.Sequence(lambda n: f"{n:064x}")
    uploaded_by = factory.SubFactory(UserFactory)
    status = "queued"


class PredictionFactory(factory.django.DjangoModelFactory):
    """A prediction with its scan marked predicted, as the worker leaves it."""

    class Meta:
        model = "radiology.Prediction"

    scan = factory.SubFactory(ScanFactory, status="predicted")
    model_version = factory.SubFactory(ModelVersionFactory)
    probability = 0.8
    threshold = factory.SelfAttribute("model_version.threshold")
    label = factory.LazyAttribute(lambda p: "PNEUMONIA" if p.probability >= p.threshold else "NORMAL")
    heatmap = factory.django.FileField(filename="heatmap.png", data=b"png")
    inference_ms = 5.0

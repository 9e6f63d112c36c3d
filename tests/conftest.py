"""Shared fixtures: users of each role, a logged-in client per role, patients, an active tiny model."""

import pytest
from django.test import Client

from tests.factories import PatientFactory, UserFactory

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # The real hasher takes most of a second per user on these machines; tests need only a login.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def fresh_cache():
    """API rate-limit counts live in the cache: each test starts with none."""
    from django.core.cache import cache

    cache.clear()
    return


@pytest.fixture(autouse=True)
def media_root(tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def radiographer(db):
    return UserFactory(username="radiographer1", role="radiographer")


@pytest.fixture
def doctor(db):
    return UserFactory(username="doctor1", role="doctor")


@pytest.fixture
def admin_user(db):
    return UserFactory(username="admin1", role="admin", is_staff=True)


@pytest.fixture
def integration_account(db):
    """A service account (PACS bridge, script): API only, tokens only (no password)."""
    return UserFactory(username="pacs-bridge", role="integration", password=None)


@pytest.fixture
def outsider(db):
    """A logged-in user with no role."""
    return UserFactory(username="nobody")


def logged_in(user):
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def radiographer_client(radiographer):
    return logged_in(radiographer)


@pytest.fixture
def doctor_client(doctor):
    return logged_in(doctor)


@pytest.fixture
def admin_role_client(admin_user):
    return logged_in(admin_user)


@pytest.fixture
def patient(db):
    return PatientFactory()


@pytest.fixture(scope="session")
def tiny_artifact(tmp_path_factory):
    from tests.support.tiny_model import make_tiny_artifact

    return make_tiny_artifact(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture
def loadable_files(tiny_artifact):
    """ModelVersionFactory fields that point at real, verifiable model files (the tiny model's)."""
    from classifier.artifact import read_metadata

    return {"artifact_path": str(tiny_artifact), "sha256": read_metadata(tiny_artifact)["sha256"]}


@pytest.fixture
def model_version(db, tiny_artifact):
    from classifier.registry import register_model

    return register_model(tiny_artifact, activate=True)


@pytest.fixture
def orthanc(tmp_path, settings):
    """A real Orthanc PACS with DICOMweb, empty, that PneumoScan is configured to use."""
    from tests.support.orthanc import PASSWORD, USERNAME, OrthancServer, orthanc_missing_reason

    missing = orthanc_missing_reason()
    if missing:
        pytest.skip(f"No real PACS for this test: {missing}.")
    server = OrthancServer(tmp_path / "orthanc")
    server.start()
    settings.PACS_DICOMWEB_URL = server.dicomweb_url
    settings.PACS_USERNAME, settings.PACS_PASSWORD = USERNAME, PASSWORD
    yield server
    server.stop()

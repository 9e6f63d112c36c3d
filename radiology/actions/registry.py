"""The model registry's clinical side: which model version is in force."""

from django.core.exceptions import ValidationError
from django.db import transaction

from radiology.actions.audit import audit


def activate_model_version(actor, version):
    """An admin puts a model version in force; new predictions use it, old ones keep theirs.

    Its files are checked first: activating a missing or damaged model would fail every scan."""
    from classifier.artifact import ArtifactError, verified_metadata
    from classifier.models import ModelVersion

    try:
        metadata = verified_metadata(version.resolved_artifact_path())
        if metadata["sha256"] != version.sha256:
            raise ArtifactError(f"{version.artifact_path} is not the file registered (sha256 {metadata['sha256']})")
    except (ArtifactError, OSError) as error:
        raise ValidationError(f"Model {version.version} cannot be activated: {error}") from None
    with transaction.atomic():
        previous = ModelVersion.objects.select_for_update().filter(is_active=True).first()
        version.activate()
        audit(
            actor,
            "model_version.activated",
            version,
            before={"active": previous.version if previous else None},
            after={"active": version.version},
        )
    return version

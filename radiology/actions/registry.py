"""The model registry's clinical side: which model version is in force, and which one challenges it."""

from django.core.exceptions import ValidationError
from django.db import transaction

from classifier.conflicts import StateConflict
from radiology.actions.audit import audit


def check_model_files(version, purpose):
    """Refuses a version whose files are missing or damaged: it would fail every scan it ran on."""
    from classifier.artifact import ArtifactError, verified_metadata

    try:
        metadata = verified_metadata(version.resolved_artifact_path())
        if metadata["sha256"] != version.sha256:
            raise ArtifactError(f"{version.artifact_path} is not the file registered (sha256 {metadata['sha256']})")
    except (ArtifactError, OSError) as error:
        raise StateConflict(f"Model {version.version} cannot be {purpose}: {error}") from None


def activate_model_version(actor, version):
    """An admin puts a model version in force; new predictions use it, old ones keep theirs.

    The challenger is not activated so: it is promoted, its comparison read and confirmed."""
    from classifier.models import ModelVersion

    if version.is_challenger:
        raise StateConflict(
            f"Model {version.version} is the challenger: promote it after reading its comparison with the active model."
        )
    check_model_files(version, "activated")
    with transaction.atomic():
        previous = ModelVersion.objects.select_for_update().filter(is_active=True).first()
        if ModelVersion.objects.select_for_update().get(pk=version.pk).is_challenger:
            raise StateConflict(f"Model {version.version} became the challenger meanwhile: promote it instead.")
        version.activate()
        audit(
            actor,
            "model_version.activated",
            version,
            before={"active": previous.version if previous else None},
            after={"active": version.version},
        )
    return version


def start_challenger(actor, version):
    """An admin makes a registered, inactive version the challenger: it then also predicts every new
    scan, in the shadow of the active version, and nobody but the comparison sees its answers."""
    from classifier.models import ModelVersion

    check_model_files(version, "the challenger")
    with transaction.atomic():
        version.start_challenge()
        active = ModelVersion.active()
        audit(
            actor,
            "model_version.challenger_started",
            version,
            before={"challenger": None},
            after={"challenger": version.version, "active": active.version if active else None},
        )
    return version


def end_challenger(actor, version):
    """An admin stops the challenger; what it predicted stays, for its comparison."""
    with transaction.atomic():
        version.end_challenge()
        audit(actor, "model_version.challenger_ended", version, before={"challenger": version.version}, after=None)
    return version


def promote_challenger(actor, version, confirmed):
    """The challenger becomes the active version, once an admin has read its comparison and confirmed.

    -> the comparison it was promoted on; its summary is kept in the audit event."""
    from classifier.models import ModelVersion
    from radiology.comparison import compare_with_champion, summary

    if not version.is_challenger:
        raise StateConflict(f"Model {version.version} is not the challenger: there is nothing to promote.")
    if not confirmed:
        raise ValidationError({"confirm": "Read the comparison with the active model, then confirm the promotion."})
    check_model_files(version, "promoted")
    with transaction.atomic():
        previous = ModelVersion.objects.select_for_update().filter(is_active=True).first()
        if not ModelVersion.objects.select_for_update().get(pk=version.pk).is_challenger:
            raise StateConflict(f"Model {version.version} stopped being the challenger meanwhile.")
        comparison = compare_with_champion(version)
        version.activate()
        audit(
            actor,
            "model_version.promoted",
            version,
            before={"active": previous.version if previous else None, "challenger": version.version},
            after={"active": version.version, "challenger": None, "comparison": summary(comparison)},
        )
    return comparison


def record_threshold_from_reviews(actor, version):
    """An admin records the threshold the doctors' labels choose (radiology.monitoring) as a new,
    inactive calibrated version of `version`: the same code path as `calibrate_model`, audited."""
    from classifier.registry import record_calibrated_version
    from radiology.monitoring import MIN_REVIEWS_FOR_THRESHOLD, reviewed_sample, threshold_rule_of

    labels, scores = reviewed_sample(version)
    if len(labels) < MIN_REVIEWS_FOR_THRESHOLD:
        raise ValidationError(
            f"Model {version.version} has {len(labels)} reviewed scans within intended use; "
            f"a threshold needs at least {MIN_REVIEWS_FOR_THRESHOLD}."
        )
    source = {
        "source": "doctors' final labels of reviewed scans within intended use",
        "data": {"images": len(labels), "pneumonia": sum(labels), "normal": len(labels) - sum(labels)},
    }
    try:
        with transaction.atomic():
            calibrated = record_calibrated_version(
                version, labels, scores, threshold_rule_of(version), "reviews", source
            )
            audit(
                actor,
                "model_version.calibrated",
                calibrated,
                before={"version": version.version, "threshold": version.threshold},
                after={"version": calibrated.version, "threshold": calibrated.threshold, "reviews": len(labels)},
            )
    except ValueError as error:  # one class only: no threshold to choose
        raise ValidationError(str(error)) from None
    return calibrated


def record_population(actor, base, min_age_years, max_age_years, reason):
    """A site declares another patient population for `base` (e.g. wider ages after its own validation):
    a new, inactive version with the same files and that population, audited; an admin activates it.
    The intended-use check reads the population of the version in force."""
    from classifier.models import ModelVersion

    reason = (reason or "").strip()
    if not reason:
        raise ValidationError("Say why the population changes (the site's own validation).")
    if not 0 <= min_age_years <= max_age_years:
        raise ValidationError("The minimum age must be at least 0 and at most the maximum.")
    intended_use = base.metadata.get("intended_use") or {}
    population = {"min_age_years": min_age_years, "max_age_years": max_age_years, "source": reason}
    root = base.version.split("-ages-")[0]
    name, number = f"{root}-ages-{min_age_years}-{max_age_years}", 1
    with transaction.atomic():
        while ModelVersion.objects.filter(version=name if number == 1 else f"{name}-{number}").exists():
            number += 1
        version = ModelVersion.objects.create(
            version=name if number == 1 else f"{name}-{number}",
            artifact_path=base.artifact_path,
            sha256=base.sha256,
            threshold=base.threshold,
            metadata={**base.metadata, "intended_use": {**intended_use, "population": population}},
            evaluation=base.evaluation,
            parent=base,
        )
        audit(
            actor,
            "model_version.population_changed",
            version,
            before={"version": base.version, "population": intended_use.get("population")},
            after={"version": version.version, "population": population},
        )
    return version

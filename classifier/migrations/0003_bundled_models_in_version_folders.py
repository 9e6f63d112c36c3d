"""The bundled model files moved into a folder per version (classifier/bundled/<version>/), so that a
new bundled model never replaces the files of the version an installation runs. Versions registered
from the old shared path, with the files that lay there (mnv2-050-2026-11-26 and the versions
calibrated from it share its sha256), now point to that version's folder."""

from django.db import migrations

OLD_PATH = "classifier/bundled/pneumonia.keras"
MOVED = {
    # sha256 of the .keras file -> its folder now
    "93c830d5669ccc1668b0f333f57cd0215586fe01e1a21c45235c3b97e22ca41d": (
        "classifier/bundled/mnv2-050-2026-11-26/pneumonia.keras"
    ),
}


def forwards(apps, schema_editor):
    ModelVersion = apps.get_model("classifier", "ModelVersion")
    for sha256, path in MOVED.items():
        ModelVersion.objects.filter(artifact_path=OLD_PATH, sha256=sha256).update(artifact_path=path)


def backwards(apps, schema_editor):
    ModelVersion = apps.get_model("classifier", "ModelVersion")
    for path in MOVED.values():
        ModelVersion.objects.filter(artifact_path=path).update(artifact_path=OLD_PATH)


class Migration(migrations.Migration):
    dependencies = [("classifier", "0002_challenger")]

    operations = [migrations.RunPython(forwards, backwards)]

"""Files follow rows: a heatmap exists only for a committed prediction, and `cleanup_orphans`
removes stored files no row names once they are an hour old."""

import os
import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from radiology.actions import clinical, pipeline
from radiology.models import AuditEvent, Prediction, Scan
from tests.factories import ModelVersionFactory, PredictionFactory
from tests.support.images import png_bytes


def stored_files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_a_heatmap_is_deleted_when_its_transaction_rolls_back(db, radiographer, patient, media_root, monkeypatch):
    monkeypatch.setattr(clinical, "enqueue_prediction", lambda scan_id: None)
    scan = clinical.upload_scan(radiographer, patient, "chest.png", png_bytes()).scan
    pipeline.claim_scans_for_prediction(scan.pk, "run-1")
    before = stored_files(media_root)

    def audit_fails(*args, **kwargs):
        raise OSError("No space left on device")  # the last step of the transaction fails

    monkeypatch.setattr(pipeline, "audit", audit_fails)
    with pytest.raises(OSError):
        pipeline.record_prediction(scan.pk, ModelVersionFactory(), 0.7, b"heatmap", 3.0, claim_token="run-1")

    assert stored_files(media_root) == before  # the upload only: no heatmap left behind
    assert not Prediction.objects.exists()
    scan.refresh_from_db()
    assert (scan.status, scan.claim_token) == (Scan.Status.PROCESSING, "run-1")


def age(path, hours):
    past = time.time() - hours * 3600
    os.utime(path, (past, past))


@pytest.fixture
def media_with_orphans(db, media_root):
    kept = PredictionFactory()  # a scan's image and a heatmap, both named by rows
    for field_file in (kept.scan.image, kept.heatmap):
        age(field_file.path, 3)
    old_orphan = media_root / "heatmaps" / "2026" / "11" / "orphan.png"
    young_orphan = media_root / "scans" / "2026" / "12" / "just-written.png"
    for path in (old_orphan, young_orphan):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"left behind")
    age(old_orphan, 2)
    return kept, old_orphan, young_orphan


def run(*args):
    out = StringIO()
    call_command("cleanup_orphans", *args, stdout=out)
    return out.getvalue()


def test_dry_run_lists_old_orphans_and_removes_nothing(media_with_orphans, media_root):
    kept, old_orphan, young_orphan = media_with_orphans
    files = stored_files(media_root)

    output = run("--dry-run")

    assert output.splitlines()[0].startswith("heatmaps/2026/11/orphan.png\t11 bytes\t2.0 h old")
    assert "1 orphan files, 11 bytes, would be removed (dry run)." in output
    assert stored_files(media_root) == files
    assert not AuditEvent.objects.filter(action="media.orphans_removed").exists()


def test_cleanup_removes_only_old_files_no_row_names(media_with_orphans, media_root):
    kept, old_orphan, young_orphan = media_with_orphans

    output = run()

    assert "1 orphan files, 11 bytes, removed." in output
    assert not old_orphan.exists()
    assert young_orphan.exists()  # its transaction may still be open
    assert os.path.exists(kept.scan.image.path) and os.path.exists(kept.heatmap.path)
    event = AuditEvent.objects.get(action="media.orphans_removed")
    assert event.after == {"files": ["heatmaps/2026/11/orphan.png"]}
    assert "0 orphan files, 0 bytes, removed." in run()


def test_a_negative_age_is_refused(db):
    with pytest.raises(CommandError, match="cannot be negative"):
        run("--older-than-minutes", "-5")

"""export_reviewed: the doctors' confirmed scans as training material, with no patient identity;
train_model reads several such folders and still splits by patient."""

import csv
import io
import re

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from PIL import Image

from classifier.data import list_labeled_folders, split_by_patient
from radiology.actions import clinical
from radiology.ingest import decode_upload
from radiology.models import AuditEvent, Review
from tests.factories import PatientFactory, PredictionFactory
from tests.support.images import chest_like_pixels, dicom_bytes, png_bytes

IDENTITY = {
    "name": "Jane Doe",
    "mrn": "MRN-7741",
    "birth_date": "2019-04-02",
}


def png_with_text(seed, text):
    """A PNG upload carrying identity in a text chunk, as some exporting software writes."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Comment", text)
    buffer = io.BytesIO()
    Image.fromarray(chest_like_pixels(seed=seed)).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def reviewed_scan(doctor, radiographer, patient, filename, data, probability, decision):
    scan = clinical.upload_scan(radiographer, patient, filename, data).scan
    PredictionFactory(scan=scan, probability=probability)
    scan.status = "predicted"
    scan.save(update_fields=["status"])
    review = clinical.review_scan(doctor, scan, decision, "disagree" if decision == "override" else "")
    return scan, review


@pytest.fixture
def site(doctor, radiographer, monkeypatch):
    """Jane Doe: a DICOM scan (PNEUMONIA) and a PNG with her name in a text chunk, first confirmed
    NORMAL then corrected to PNEUMONIA; another patient: a NORMAL scan, one unreviewed scan and one
    reviewed outside the model's intended use (none of these two exported)."""
    monkeypatch.setattr(clinical, "enqueue_prediction", lambda scan_id: None)
    jane = PatientFactory(name=IDENTITY["name"], mrn=IDENTITY["mrn"], birth_date=IDENTITY["birth_date"])
    other = PatientFactory()
    dicom = dicom_bytes(seed=1, patient_id=IDENTITY["mrn"], patient_name="Doe^Jane", birth_date="20190402")
    dicom_scan, _ = reviewed_scan(doctor, radiographer, jane, "jane-doe.dcm", dicom, 0.9, "confirm")
    text = f"{IDENTITY['name']} {IDENTITY['mrn']} born {IDENTITY['birth_date']}"
    png_scan, first = reviewed_scan(doctor, radiographer, jane, "jane.png", png_with_text(2, text), 0.2, "confirm")
    clinical.review_scan(doctor, png_scan, "override", "consolidation after all", supersedes=first)
    other_scan, _ = reviewed_scan(doctor, radiographer, other, "x.png", png_bytes(seed=3), 0.1, "confirm")
    clinical.upload_scan(radiographer, other, "later.png", png_bytes(seed=4))  # not reviewed
    outside, _ = reviewed_scan(doctor, radiographer, other, "adult.png", png_bytes(seed=5), 0.8, "confirm")
    outside.prediction.intended_use = {"within": False, "reasons": ["age"], "score": 3.0}
    outside.prediction.save(update_fields=["intended_use"])
    return {"dicom": dicom_scan, "png": png_scan, "other": other_scan, "jane": jane, "other_patient": other}


def manifest_of(folder):
    with (folder / "manifest.csv").open(newline="") as rows:
        return list(csv.DictReader(rows))


def test_the_export_holds_the_reviewed_scans_by_final_label_and_no_identity(site, tmp_path):
    out = tmp_path / "export"
    call_command("export_reviewed", out=str(out))

    rows = manifest_of(out)
    assert len(rows) == 3 and set(rows[0]) == {"file", "label", "patient"}
    assert sorted(row["label"] for row in rows) == ["NORMAL", "PNEUMONIA", "PNEUMONIA"]  # the correction counts
    assert all(row["file"].startswith(row["label"] + "/") and (out / row["file"]).is_file() for row in rows)
    by_patient = {}
    for row in rows:
        by_patient.setdefault(row["patient"], []).append(row["label"])
    assert sorted(map(sorted, by_patient.values())) == [["NORMAL"], ["PNEUMONIA", "PNEUMONIA"]]  # Jane's two together

    forbidden = [
        IDENTITY["name"],
        "Doe",
        IDENTITY["mrn"],
        "7741",
        IDENTITY["birth_date"],
        "20190402",
        site["other_patient"].name,
        site["other_patient"].mrn,
    ]
    for path in [p for p in out.rglob("*") if p.is_file()]:
        content = path.read_bytes()
        for text in forbidden:
            assert text.encode() not in content, f"{text!r} in {path.name}"
        assert path.name == "manifest.csv" or re.fullmatch(r"[0-9a-f]{20}\.png", path.name)
        if path.suffix == ".png":
            assert not re.search(rb"tEXt|iTXt|zTXt|eXIf|tIME", content), f"{path.name} carries metadata"
    # The manifest names no scan or patient by its database id either: keys are keyed hashes.
    assert all(re.fullmatch(r"[0-9a-f]{20}", row["patient"]) for row in rows)

    # The pixels are the stored scan's, decoded as the model sees them.
    with site["dicom"].image.open("rb") as stored:
        original = decode_upload(stored.read()).pixels
    matches = [row["file"] for row in rows if np.array_equal(np.asarray(Image.open(out / row["file"])), original)]
    assert len(matches) == 1 and matches[0].startswith("PNEUMONIA/")

    event = AuditEvent.objects.get(action="scans.exported")
    assert event.after["images"] == 3 and event.after["counts"] == {"NORMAL": 1, "PNEUMONIA": 2}


def test_since_keeps_the_scans_reviewed_from_that_day(site, tmp_path):
    Review.objects.filter(scan=site["other"]).update(created_at="2026-01-10T12:00:00Z")
    Review.objects.filter(scan__in=[site["dicom"], site["png"]]).update(created_at="2026-03-01T12:00:00Z")

    call_command("export_reviewed", out=str(tmp_path / "march"), since="2026-02-01")

    assert sorted(row["label"] for row in manifest_of(tmp_path / "march")) == ["PNEUMONIA", "PNEUMONIA"]


def test_the_same_patient_has_the_same_key_in_every_export(site, tmp_path):
    call_command("export_reviewed", out=str(tmp_path / "a"))
    call_command("export_reviewed", out=str(tmp_path / "b"))
    assert manifest_of(tmp_path / "a") == manifest_of(tmp_path / "b")


@pytest.mark.django_db
def test_bad_input_is_refused_and_changes_nothing(tmp_path):
    existing = tmp_path / "busy"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    with pytest.raises(CommandError, match="not an empty folder"):
        call_command("export_reviewed", out=str(existing))
    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        call_command("export_reviewed", out=str(tmp_path / "new"), since="last week")
    assert [p.name for p in existing.iterdir()] == ["keep.txt"]
    assert not (tmp_path / "new").exists()
    assert not list(tmp_path.glob(".*partial*"))
    assert not AuditEvent.objects.filter(action="scans.exported").exists()


# --- training on several folders, split by patient ----------------------------------------------------------


def labeled_folder(root, patients, images_each, manifest=True, seed=0):
    """A labeled folder of generated images; with a manifest naming each file's patient."""
    rows = []
    rng = np.random.default_rng(seed)
    for p in range(patients):
        label = ("NORMAL", "PNEUMONIA")[p % 2]
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(images_each):
            name = f"{label}/{rng.integers(1 << 40):x}.png" if manifest else f"{label}/person{p}_virus_{i}.png"
            (root / name).write_bytes(png_bytes(seed=int(rng.integers(1 << 30))))
            rows.append({"file": name, "label": label, "patient": f"key-{p}"})
    if manifest:
        with (root / "manifest.csv").open("w", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=["file", "label", "patient"])
            writer.writeheader()
            writer.writerows(rows)
    return root


def test_several_folders_are_split_together_by_patient(tmp_path):
    export = labeled_folder(tmp_path / "export", patients=20, images_each=3, seed=1)
    kermany = labeled_folder(tmp_path / "kermany", patients=20, images_each=2, manifest=False, seed=2)

    images = list_labeled_folders([export, kermany])
    train, validation = split_by_patient(images, validation_fraction=0.3, seed=5)

    assert len(images) == 100
    assert {i.patient_id for i in train}.isdisjoint({i.patient_id for i in validation})
    from_export = [i for i in validation if i.path.is_relative_to(export)]
    assert from_export and {i.patient_id for i in from_export} <= {f"key-{p}" for p in range(20)}
    assert any(i.path.is_relative_to(kermany) for i in validation)


def test_train_model_takes_several_data_folders(tmp_path, capsys):
    export = labeled_folder(tmp_path / "export", patients=10, images_each=3, seed=1)
    kermany = labeled_folder(tmp_path / "kermany", patients=10, images_each=2, manifest=False, seed=2)

    call_command(
        "train_model",
        "--data",
        str(export),
        "--data",
        str(kermany),
        "--out",
        str(tmp_path / "unused"),
        "--run-dir",
        str(tmp_path / "run"),
        "--validation-fraction",
        "0.3",
        "--split-only",
    )

    output = capsys.readouterr().out
    train = re.search(r"train \{'images': (\d+)", output)
    validation = re.search(r"validation \{'images': (\d+)", output)
    assert int(train.group(1)) + int(validation.group(1)) == 50
    linked = [p for p in (tmp_path / "run" / "validation-split").rglob("*.png")]
    assert len(linked) == int(validation.group(1))

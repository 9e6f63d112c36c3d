"""Labeled folders and the patient-wise split."""

import numpy as np
import pytest

from classifier.data import list_labeled_images, patient_id_for, split_by_patient, summarize


@pytest.mark.parametrize(
    "filename, patient",
    [
        ("person123_bacteria_456.jpeg", "person123"),
        ("person1_virus_6.jpeg", "person1"),
        ("IM-0115-0001.jpeg", "IM-0115"),
        ("IM-0429-0001-0002.jpeg", "IM-0429"),
        ("NORMAL2-IM-0006-0001.jpeg", "NORMAL2-IM-0006"),
        ("scan_from_site.png", "scan_from_site"),
    ],
)
def test_patient_id_follows_the_dataset_naming(filename, patient):
    assert patient_id_for(filename) == patient


def make_folder(root, files):
    """files: {relative path: bytes}"""
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return root


def test_split_keeps_each_patient_and_each_duplicate_file_on_one_side(tmp_path):
    files = {}
    for p in range(40):
        for image in range(3):  # several images per patient
            files[f"PNEUMONIA/person{p}_bacteria_{image}.jpeg"] = f"p{p}-{image}".encode()
        files[f"NORMAL/IM-{p:04d}-0001.jpeg"] = f"n{p}".encode()
    # The same bytes filed under two patients must not straddle the split.
    files["NORMAL/IM-9000-0001.jpeg"] = b"duplicate"
    files["NORMAL/IM-9001-0001.jpeg"] = b"duplicate"
    images = list_labeled_images(make_folder(tmp_path, files))

    train, validation = split_by_patient(images, validation_fraction=0.25, seed=3)

    assert len(train) + len(validation) == len(images)
    assert not {i.patient_id for i in train} & {i.patient_id for i in validation}
    sides = {i.patient_id: side for side, split in (("t", train), ("v", validation)) for i in split}
    assert sides["IM-9000"] == sides["IM-9001"]
    assert summarize(validation)["pneumonia"] > 0 and summarize(validation)["normal"] > 0
    again = split_by_patient(images, validation_fraction=0.25, seed=3)[1]
    assert [i.path for i in again] == [i.path for i in validation]  # reproducible from the seed


def test_labeled_folder_needs_both_class_folders(tmp_path):
    make_folder(tmp_path, {"NORMAL/a.png": b"x"})
    with pytest.raises(FileNotFoundError, match="PNEUMONIA"):
        list_labeled_images(tmp_path)


def test_labels_follow_the_folders(tmp_path):
    make_folder(tmp_path, {"NORMAL/a.png": b"1", "PNEUMONIA/b.JPG": b"2", "PNEUMONIA/notes.txt": b"3"})
    images = list_labeled_images(tmp_path)
    assert [(i.path.name, i.label) for i in images] == [("a.png", 0), ("b.JPG", 1)]
    assert np.array([i.label for i in images]).sum() == 1


@pytest.mark.parametrize(
    "manifest",
    [
        "file,patient\nNORMAL/a.png,child-7\nPNEUMONIA/b.png,child-7\n",  # an export's
        "split,label,filename,patient_id\nx,NORMAL,a.png,child-7\nx,PNEUMONIA,b.png,child-7\n",  # the data set's
    ],
)
def test_a_manifest_names_each_files_patient(tmp_path, manifest):
    make_folder(tmp_path, {"NORMAL/a.png": b"1", "PNEUMONIA/b.png": b"2", "manifest.csv": manifest.encode()})
    assert [i.patient_id for i in list_labeled_images(tmp_path)] == ["child-7", "child-7"]


def test_a_manifest_without_patients_is_refused(tmp_path):
    make_folder(tmp_path, {"NORMAL/a.png": b"1", "PNEUMONIA/b.png": b"2", "manifest.csv": b"file,label\na,b\n"})
    with pytest.raises(ValueError, match="patient"):
        list_labeled_images(tmp_path)

"""PACS round trip, as a department would see it: `make run` (bin/run-demo: SQLite, filesystem broker,
gunicorn and one Celery worker with its beat schedule) pointed at a real Orthanc with DICOMweb.

N labelled X-rays (NORMAL/PNEUMONIA folders) are stored in Orthanc as CR instances, each its own
patient and study; the bench waits until each is predicted (found through the API by MRN =
PatientID), reviews each through the API as a doctor with its true label, then waits until every
study holds a VERIFIED SR coding Pneumonia (233604007) Present/Absent as the doctor said, and a
secondary capture. Every SR and secondary capture is checked with dciodvfy.

    .venv/bin/python bench/pacs_roundtrip.py --images ../shared/datasets/kermany-224/site-calibration --n 8

Loopback only; it owns a temporary VAR_DIR and the processes it starts, and stops them at the end.
Exit status 0 only when every study got its results within the time limits and every object is valid.
"""

import argparse
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from tests.support.dciodvfy import dciodvfy_errors  # noqa: E402
from tests.support.orthanc import PASSWORD, USERNAME, OrthancServer, free_port  # noqa: E402

PNEUMONIA, PRESENT, ABSENT = "233604007", "52101004", "2667000"


def labelled_images(folder: Path, n: int):
    """n (label, path) pairs taken in turn from the NORMAL and PNEUMONIA subfolders."""
    normal = sorted((folder / "NORMAL").glob("*.jpeg"))
    pneumonia = sorted((folder / "PNEUMONIA").glob("*.jpeg"))
    pairs = [pair for both in zip(normal, pneumonia) for pair in (("NORMAL", both[0]), ("PNEUMONIA", both[1]))]
    return pairs[:n]


def cr_instance(path: Path, index: int) -> tuple[str, bytes]:
    """The image as a modality would send it: a CR instance, its own patient and study."""
    import numpy as np
    from PIL import Image
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    pixels = np.asarray(Image.open(path).convert("L"), dtype=np.uint8)
    mrn = f"PACS-BENCH-{index:03d}-{generate_uid()[-6:]}"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"  # CR Image Storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    dataset.SOPClassUID, dataset.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    dataset.StudyInstanceUID, dataset.SeriesInstanceUID = generate_uid(), generate_uid()
    dataset.Modality = "CR"
    dataset.PatientID, dataset.PatientName = mrn, f"Child^Bench{index}"
    dataset.PatientBirthDate, dataset.PatientSex = "20210301", "MF"[index % 2]
    dataset.StudyDate, dataset.StudyTime, dataset.AccessionNumber, dataset.StudyID = "20261202", "090000", "", "1"
    dataset.SeriesNumber, dataset.InstanceNumber = 1, 1
    dataset.BodyPartExamined = "CHEST"
    dataset.Rows, dataset.Columns = pixels.shape
    dataset.SamplesPerPixel, dataset.PhotometricInterpretation = 1, "MONOCHROME2"
    dataset.BitsAllocated = dataset.BitsStored = 8
    dataset.HighBit, dataset.PixelRepresentation = 7, 0
    dataset.PixelData = pixels.tobytes()
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return mrn, buffer.getvalue()


def start_pneumoscan(var_dir: Path, port: int, orthanc: OrthancServer, poll_seconds: int, log):
    environment = {
        key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL")
    }
    environment.update(
        DEBUG="1",
        PORT=str(port),
        VAR_DIR=str(var_dir),
        PACS_DICOMWEB_URL=orthanc.dicomweb_url,
        PACS_USERNAME=USERNAME,
        PACS_PASSWORD=PASSWORD,
        PACS_POLL_SECONDS=str(poll_seconds),
    )
    process = subprocess.Popen(
        [str(PROJECT / "bin" / "run-demo")],
        cwd=PROJECT,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return process, environment


def wait_until(predicate, timeout, interval=1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


def issue_token(environment, username):
    result = subprocess.run(
        [str(PROJECT / ".venv" / "bin" / "python"), "manage.py", "issue_token", username, "--name", "pacs bench"],
        cwd=PROJECT,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return result.stdout.strip().splitlines()[-1]


def content_items(dataset):
    for item in dataset.get("ContentSequence", []):
        yield item
        yield from content_items(item)


def pneumonia_code(report):
    return next(
        (
            item.ConceptCodeSequence[0].CodeValue
            for item in content_items(report)
            if item.ValueType == "CODE" and item.ConceptNameCodeSequence[0].CodeValue == PNEUMONIA
        ),
        None,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=PROJECT.parent / "shared/datasets/kermany-224/site-calibration")
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--poll-seconds", type=int, default=5)
    parser.add_argument("--predict-timeout", type=int, default=300)
    parser.add_argument("--results-timeout", type=int, default=180)
    arguments = parser.parse_args()

    from dicomweb_client import DICOMwebClient
    from pydicom import dcmread

    work = Path(tempfile.mkdtemp(prefix="pacs-roundtrip-"))
    orthanc = OrthancServer(work / "orthanc")
    orthanc.start()
    port = free_port()
    log = (work / "pneumoscan.log").open("wb")
    process, environment = start_pneumoscan(work / "var", port, orthanc, arguments.poll_seconds, log)
    api = f"http://127.0.0.1:{port}/api/v1"
    summary = {"n": arguments.n, "poll_seconds": arguments.poll_seconds, "log": str(work / "pneumoscan.log")}
    try:
        if not wait_until(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), 300):
            raise SystemExit(f"PneumoScan did not start; see {summary['log']}")
        session = requests.Session()
        session.headers["Authorization"] = f"Token {issue_token(environment, 'doctor')}"

        studies = []
        for index, (label, path) in enumerate(labelled_images(arguments.images, arguments.n)):
            mrn, data = cr_instance(path, index)
            study_uid = str(dcmread(io.BytesIO(data), stop_before_pixels=True).StudyInstanceUID)
            studies.append({"mrn": mrn, "label": label, "study": study_uid, "data": data})
        stored_at = time.monotonic()
        orthanc.store(*[study.pop("data") for study in studies])

        def predicted():
            for study in studies:
                if "scan" in study:
                    continue
                patients = session.post(f"{api}/patients/search/", json={"query": study["mrn"]}, timeout=10).json()
                if not patients.get("results"):
                    continue
                scans = session.get(f"{api}/scans/", params={"patient": patients["results"][0]["id"]}, timeout=10)
                for scan in scans.json().get("results", []):
                    if scan["status"] == "predicted":
                        study["scan"], study["predicted_s"] = scan, time.monotonic() - stored_at
            return all("scan" in study for study in studies)

        all_predicted = wait_until(predicted, arguments.predict_timeout, interval=2)
        summary["predicted"] = sum("scan" in study for study in studies)
        summary["store_to_all_predicted_s"] = round(max(s.get("predicted_s", float("inf")) for s in studies), 1)
        if not all_predicted:
            raise SystemExit(f"Only {summary['predicted']} of {arguments.n} predicted: {json.dumps(summary)}")

        reviewed_at = time.monotonic()
        for study in studies:
            prediction = study["scan"]["prediction"]
            decision = "confirm" if prediction["label"] == study["label"] else "override"
            answer = session.post(
                f"{api}/reviews/",
                json={
                    "scan": study["scan"]["id"],
                    "decision": decision,
                    "final_label": study["label"],
                    "note": "" if decision == "confirm" else "The model's label is wrong (bench ground truth).",
                },
                timeout=30,
            )
            answer.raise_for_status()
            study["model_right"] = decision == "confirm"

        pacs = requests.Session()
        pacs.auth = (USERNAME, PASSWORD)
        client = DICOMwebClient(orthanc.dicomweb_url, session=pacs)

        def results_back():
            for study in studies:
                if "verified_s" in study:
                    continue
                found = client.search_for_instances(study_instance_uid=study["study"])
                by_modality = {}
                for attributes in found:
                    by_modality.setdefault(attributes["00080060"]["Value"][0], []).append(attributes)
                objects = [
                    client.retrieve_instance(
                        study["study"], attributes["0020000E"]["Value"][0], attributes["00080018"]["Value"][0]
                    )
                    for modality in ("SR", "OT")
                    for attributes in by_modality.get(modality, [])
                ]
                verified = [
                    o
                    for o in objects
                    if o.Modality == "SR"
                    and o.VerificationFlag == "VERIFIED"
                    and pneumonia_code(o) == (PRESENT if study["label"] == "PNEUMONIA" else ABSENT)
                ]
                captures = [o for o in objects if o.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"]
                if verified and captures:
                    study["verified_s"] = time.monotonic() - reviewed_at
                    study["objects"] = objects
            return all("verified_s" in study for study in studies)

        all_back = wait_until(results_back, arguments.results_timeout, interval=2)
        summary["studies_with_verified_sr_and_capture"] = sum("verified_s" in study for study in studies)
        summary["review_to_all_results_s"] = round(max(s.get("verified_s", float("inf")) for s in studies), 1)
        summary["model_right"] = sum(study.get("model_right", False) for study in studies)
        errors = []
        checked = 0
        for study in studies:
            for dataset in study.get("objects", []):
                buffer = io.BytesIO()
                dataset.save_as(buffer, enforce_file_format=True)
                errors += dciodvfy_errors(buffer.getvalue(), work)
                checked += 1
        summary["objects_checked_with_dciodvfy"] = checked
        summary["dciodvfy_errors"] = errors
        print(json.dumps(summary, indent=2))
        return 0 if all_back and not errors else 1
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        orthanc.stop()
        log.close()


def _answers(url):
    try:
        return requests.get(url, timeout=2).ok
    except requests.RequestException:
        return False


if __name__ == "__main__":
    sys.exit(main())

"""A real Orthanc with its DICOMweb plugin, on a free loopback port, with a temporary config and storage."""

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import requests

ORTHANC_BINARY = "Orthanc"
# Where Debian's orthanc-dicomweb package puts the plugin.
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
USERNAME, PASSWORD = "pneumoscan", "orthanc-test-password"


def orthanc_missing_reason():
    """Why a real Orthanc cannot run here, or None."""
    if shutil.which(ORTHANC_BINARY) is None:
        return "Orthanc is not installed (Debian packages orthanc and orthanc-dicomweb; .ci/run installs them)"
    if not DICOMWEB_PLUGIN.exists():
        return f"the Orthanc DICOMweb plugin is not installed ({DICOMWEB_PLUGIN}; Debian package orthanc-dicomweb)"
    return None


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class OrthancServer:
    """One Orthanc process; stop() and start() keep its port and storage, as a restarted PACS would."""

    def __init__(self, directory: Path):
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process = None
        self.config = directory / "orthanc.json"
        self.log = directory / "orthanc.log"
        self.config.write_text(
            json.dumps(
                {
                    "Name": "pneumoscan-test",
                    "StorageDirectory": str(directory / "storage"),
                    "IndexDirectory": str(directory / "storage"),
                    "HttpPort": self.port,
                    "RemoteAccessAllowed": False,
                    "DicomServerEnabled": False,
                    "AuthenticationEnabled": True,
                    "RegisteredUsers": {USERNAME: PASSWORD},
                    "Plugins": [str(DICOMWEB_PLUGIN)],
                    "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
                }
            )
        )

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def dicomweb_url(self):
        return f"{self.url}/dicom-web"

    def start(self):
        with self.log.open("ab") as log:
            self.process = subprocess.Popen([ORTHANC_BINARY, str(self.config)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited at start: {self.log.read_text()[-2000:]}")
            try:
                if requests.get(f"{self.url}/system", auth=(USERNAME, PASSWORD), timeout=1).ok:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Orthanc did not answer within 30 s: {self.log.read_text()[-2000:]}")

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def rest(self, path):
        """Orthanc's own REST API, for the tests' checks only (PneumoScan speaks DICOMweb)."""
        answer = requests.get(f"{self.url}{path}", auth=(USERNAME, PASSWORD), timeout=10)
        answer.raise_for_status()
        return answer.json()

    def store(self, *dicom_files: bytes):
        """Store instances as a modality's send would (Orthanc's REST upload, not PneumoScan's path)."""
        for data in dicom_files:
            answer = requests.post(f"{self.url}/instances", data=data, auth=(USERNAME, PASSWORD), timeout=10)
            answer.raise_for_status()


def modality_instance(
    seed=0,
    *,
    patient_id="MRN-PACS-1",
    patient_name="Doe^Jane",
    birth_date="20200115",
    sex="F",
    modality="CR",
    body_part="CHEST",
    view_position="PA",
    study_uid=None,
    series_uid=None,
    study_date="20261201",
) -> bytes:
    """An instance as a modality sends it to the PACS: a chest X-ray (CR by default) in its study and series."""
    import io

    from pydicom import dcmread
    from pydicom.uid import generate_uid

    from tests.support.images import dicom_bytes

    dataset = dcmread(
        io.BytesIO(
            dicom_bytes(seed=seed, patient_id=patient_id, patient_name=patient_name, birth_date=birth_date, sex=sex)
        )
    )
    sop_class = {
        "CR": "1.2.840.10008.5.1.4.1.1.1",
        "DX": "1.2.840.10008.5.1.4.1.1.1.1",
        "CT": "1.2.840.10008.5.1.4.1.1.2",
    }
    dataset.SOPClassUID = dataset.file_meta.MediaStorageSOPClassUID = sop_class[modality]
    dataset.Modality = modality
    dataset.StudyInstanceUID = study_uid or generate_uid()
    dataset.SeriesInstanceUID = series_uid or generate_uid()
    dataset.StudyDate = dataset.SeriesDate = study_date
    dataset.StudyTime = "101500"
    dataset.AccessionNumber = f"ACC{seed:05d}"
    dataset.StudyID = "1"
    dataset.SeriesNumber = 1
    dataset.InstanceNumber = 1
    dataset.BodyPartExamined = body_part
    if view_position:
        dataset.ViewPosition = view_position
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()

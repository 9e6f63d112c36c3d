"""The results as DICOM objects for the scan's study (highdicom), following the IHE AI Results
profile as far as it applies: a TID 1500 measurement report whose finding is Pneumonia (SNOMED CT
233604007) Present (52101004) or Absent (2667000).

- The AI's report: VerificationFlag UNVERIFIED, the device as observer, the algorithm (name,
  version, the model artifact's sha256), the probability, the threshold, the intended-use assessment.
- The Grad-CAM overlay: a secondary capture of the scan with the heatmap blended in.
- The doctor's report: VerificationFlag VERIFIED, the doctor as observer and verifying observer,
  the AI's report among its evidence; a correction lists the report it supersedes as predecessor.

Every object is rebuilt from the database and its outbox row's UIDs, so a resend is the same instance.
"""

import io

import highdicom as hd
import numpy as np
from django.utils import timezone
from PIL import Image
from pydicom import Dataset, dcmread
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from classifier.explain import overlay_rgba
from classifier.intended_use import describe
from radiology.ingest import decode_upload
from radiology.models import Label

MANUFACTURER = "PneumoScan"
ALGORITHM_NAME = "PneumoScan pneumonia classifier"
PNEUMONIA = Code("233604007", "SCT", "Pneumonia")
PRESENT, ABSENT = Code("52101004", "SCT", "Present"), Code("2667000", "SCT", "Absent")
YES, NO = Code("373066001", "SCT", "Yes"), Code("373067005", "SCT", "No")
CHEST_XRAY = Code("399208008", "SCT", "Plain chest X-ray")
NO_UNITS = Code("1", "UCUM", "no units")
# Our own concepts, in a local coding scheme (DICOM reserves the "99" prefix for these).
PROBABILITY = Code("PROBABILITY", "99PNEUMOSCAN", "Pneumonia probability")
THRESHOLD = Code("THRESHOLD", "99PNEUMOSCAN", "Decision threshold")
WITHIN_INTENDED_USE = Code("INTENDED-USE", "99PNEUMOSCAN", "Within the model's intended use")
OUTSIDE_BECAUSE = Code("OUTSIDE-USE", "99PNEUMOSCAN", "Outside the intended use because")
SERIES_NUMBERS = {"ai_report": 9901, "overlay": 9902, "doctor_report": 9903}
SR_CLASS, SC_CLASS = "1.2.840.10008.5.1.4.1.1.88.33", "1.2.840.10008.5.1.4.1.1.7"
# Type 2 attributes highdicom copies from the source image: present, empty when the modality left them out.
COPIED_STUDY_ATTRIBUTES = (
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "StudyTime",
)


def build(item) -> Dataset:
    """The outbox item's DICOM object."""
    return {"ai_report": ai_report, "overlay": overlay, "doctor_report": doctor_report}[item.kind](item)


def source_image(scan, with_pixels=False):
    with scan.image.open("rb") as stored:
        data = stored.read()
    dataset = dcmread(io.BytesIO(data), stop_before_pixels=not with_pixels)
    for keyword in COPIED_STUDY_ATTRIBUTES:
        if keyword not in dataset:
            setattr(dataset, keyword, None)
    return (dataset, data) if with_pixels else dataset


def finding(label) -> hd.sr.QualitativeEvaluation:
    return hd.sr.QualitativeEvaluation(PNEUMONIA, PRESENT if label == Label.PNEUMONIA else ABSENT)


def intended_use_evaluations(prediction) -> list:
    """The prediction's intended-use assessment: within it (Yes/No), and why not, reason by reason."""
    assessment = prediction.intended_use
    if not assessment:
        return []  # predicted before intended use was assessed: nothing to state
    within = assessment.get("within", True)
    return [hd.sr.QualitativeEvaluation(WITHIN_INTENDED_USE, YES if within else NO)] + [
        hd.sr.QualitativeEvaluation(OUTSIDE_BECAUSE, Code(reason.upper(), "99PNEUMOSCAN", describe([reason])[:64]))
        for reason in assessment.get("reasons", [])
    ]


def at(moment, dataset):
    """The object's content date and time: when the result was made, not when it is (re)sent."""
    local = timezone.localtime(moment)
    dataset.ContentDate, dataset.ContentTime = f"{local:%Y%m%d}", f"{local:%H%M%S}"
    return dataset


def ai_report(item) -> Dataset:
    prediction, source = item.prediction, source_image(item.scan)
    version = prediction.model_version
    algorithm = hd.sr.AlgorithmIdentification(
        name=ALGORITHM_NAME, version=version.version, parameters=[f"model artifact sha256 {version.sha256}"]
    )
    device = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(entropy_srcs=["pneumoscan-device", version.version]),
            name=MANUFACTURER,
            manufacturer_name=MANUFACTURER,
            model_name=version.version,
        ),
    )
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=generate_uid(entropy_srcs=[item.sop_instance_uid, "finding"]), identifier="Pneumonia"
        ),
        finding_type=PNEUMONIA,
        algorithm_id=algorithm,
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(source)],
        measurements=[
            hd.sr.Measurement(name=PROBABILITY, value=prediction.probability, unit=NO_UNITS, algorithm_id=algorithm),
            hd.sr.Measurement(name=THRESHOLD, value=prediction.threshold, unit=NO_UNITS, algorithm_id=algorithm),
        ],
        qualitative_evaluations=[finding(prediction.label), *intended_use_evaluations(prediction)],
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=device),
        procedure_reported=CHEST_XRAY,
        imaging_measurements=[group],
    )
    document = hd.sr.ComprehensiveSR(
        evidence=[source],
        content=report[0],
        series_instance_uid=item.series_instance_uid,
        series_number=SERIES_NUMBERS[item.kind],
        sop_instance_uid=item.sop_instance_uid,
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        series_description="PneumoScan AI result (unverified)",
    )
    return at(prediction.created_at, document)


def overlay(item) -> Dataset:
    prediction = item.prediction
    source, data = source_image(item.scan, with_pixels=True)
    with prediction.heatmap.open("rb") as stored:
        heatmap = np.asarray(Image.open(stored).convert("RGBA"))  # the doctors' heatmap, as stored
    picture = overlay_rgba(decode_upload(data).pixels, heatmap)
    image = hd.sc.SCImage.from_ref_dataset(
        source,
        pixel_array=picture,
        photometric_interpretation="RGB",
        bits_allocated=8,
        coordinate_system="PATIENT",
        # The overlay shares the scan's pixel grid, so its orientation is the scan's (unknown when unstated).
        patient_orientation=tuple(source.get("PatientOrientation") or ("L", "F")),
        series_instance_uid=item.series_instance_uid,
        series_number=SERIES_NUMBERS[item.kind],
        sop_instance_uid=item.sop_instance_uid,
        instance_number=1,
        manufacturer=MANUFACTURER,
        series_description="PneumoScan Grad-CAM overlay",
    )
    if not source.get("PatientOrientation"):
        image.PatientOrientation = None  # Type 2: empty when unknown, rather than a guess
    image.BodyPartExamined = source.get("BodyPartExamined") or "CHEST"
    image.ImageType = ["DERIVED", "SECONDARY"]
    image.DerivationDescription = "Grad-CAM heatmap of the PneumoScan classifier blended over the image"
    derived_from = Dataset()
    derived_from.ReferencedSOPClassUID = source.SOPClassUID
    derived_from.ReferencedSOPInstanceUID = source.SOPInstanceUID
    image.SourceImageSequence = [derived_from]
    image.BurnedInAnnotation = "NO"
    return at(prediction.created_at, image)


def person_name(user) -> str:
    """The doctor's name as a DICOM person name (Family^Given), or their username as the family name."""
    if user.last_name:
        return f"{user.last_name}^{user.first_name}"
    return f"{user.get_username()}^"


def reference(uids: dict, sop_class_uid: str, source) -> Dataset:
    """A dataset that stands for an earlier object of ours (only its identity is referenced)."""
    dataset = Dataset()
    dataset.StudyInstanceUID = uids["study_instance_uid"]
    dataset.SeriesInstanceUID = uids["series_instance_uid"]
    dataset.SOPInstanceUID = uids["sop_instance_uid"]
    dataset.SOPClassUID = sop_class_uid
    for keyword in COPIED_STUDY_ATTRIBUTES:
        setattr(dataset, keyword, source.get(keyword))
    return dataset


def doctor_report(item) -> Dataset:
    from radiology.pacs.models import OutboxItem

    review, source = item.review, source_image(item.scan)
    fields = ["study_instance_uid", "series_instance_uid", "sop_instance_uid"]
    ai = OutboxItem.objects.filter(scan=item.scan, kind=OutboxItem.Kind.AI_REPORT).values(*fields).first()
    superseded = (
        OutboxItem.objects.filter(review=review.supersedes).values(*fields).first() if review.supersedes_id else None
    )
    doctor = person_name(review.doctor)
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Person,
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
            name=doctor, login_name=review.doctor.get_username()
        ),
    )
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=generate_uid(entropy_srcs=[item.sop_instance_uid, "finding"]), identifier="Pneumonia"
        ),
        finding_type=PNEUMONIA,
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(source)],
        qualitative_evaluations=[finding(review.final_label)],
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_person_context=observer),
        procedure_reported=CHEST_XRAY,
        imaging_measurements=[group],
    )
    document = hd.sr.ComprehensiveSR(
        # The AI's report is evidence of the doctor's: the result they verified.
        evidence=[source] + ([reference(ai, SR_CLASS, source)] if ai else []),
        content=report[0],
        series_instance_uid=item.series_instance_uid,
        series_number=SERIES_NUMBERS[item.kind],
        sop_instance_uid=item.sop_instance_uid,
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        is_final=True,
        is_verified=True,
        verifying_observer_name=doctor,
        verifying_organization=source.get("InstitutionName") or MANUFACTURER,
        previous_versions=[reference(superseded, SR_CLASS, source)] if superseded else None,
        series_description="PneumoScan result verified by a doctor",
    )
    document.VerifyingObserverSequence[0].VerificationDateTime = f"{timezone.localtime(review.created_at):%Y%m%d%H%M%S}"
    return at(review.created_at, document)

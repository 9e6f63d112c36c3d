"""The three daily flows in Chromium, one after the other, as they happen in a department: the
radiographer uploads, a real Celery worker predicts, the doctor reviews what was uploaded, and
the admin's dashboard counts those reviews. One test, because each flow works on what the
previous one left; each step writes a screenshot.
"""

import re

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from radiology.models import Label, Prediction, Review
from tests.support.images import dicom_bytes, jpeg_bytes, png_bytes
from tests.support.worker import publishing_to, purge_broker, worker_for_tests

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# The worker starts cold (Django, TensorFlow, the model) while the page waits, then predicts three.
PREDICTION_TIMEOUT_MS = 150_000
PATIENT = {"mrn": "BRW-20240501", "name": "Ada Browser", "birth_date": "2019-05-04", "sex": "F"}
TABLET = {"width": 768, "height": 1024}  # an iPad held upright, the narrowest tablet in use
OVERRIDE_NOTE = "Apparent opacity is a positioning artefact; no consolidation."


@pytest.fixture(scope="module")
def worker(django_db_setup, tmp_path_factory):
    """A real worker, not started: the flow starts it once the radiographer has seen the scans
    queued, so that seeing them change to predicted is certain, not a race."""
    worker = worker_for_tests(
        tmp_path_factory.mktemp("browser-worker-logs"), tmp_path_factory.mktemp("browser-media"), name="browser"
    )
    purge_broker(worker.broker_url)  # tasks left by an earlier run would run first
    yield worker
    worker.stop()


@pytest.fixture(autouse=True)
def media_root(settings, worker):
    """The live server stores uploads where the worker reads them, and enqueues to its broker."""
    settings.MEDIA_ROOT = worker.media_root
    with publishing_to(worker.broker_url):
        yield settings.MEDIA_ROOT


@pytest.fixture
def xray_files(tmp_path):
    """A PNG, a JPEG and a DICOM file of the patient, as they would come from the modalities."""
    files = {
        "chest-pa.png": png_bytes(seed=11),
        "chest-ap.jpg": jpeg_bytes(seed=12),
        "chest-dx.dcm": dicom_bytes(
            seed=13, patient_id=PATIENT["mrn"], patient_name="Browser^Ada", birth_date="20190504", sex="F"
        ),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return [tmp_path / name for name in files]


def test_radiographer_uploads_doctor_reviews_admin_sees_the_reviews(
    open_browser_as,
    screenshots,
    worker,
    browser_model_version,
    radiographer,
    doctor,
    admin_user,
    xray_files,
):
    admin_page = open_browser_as(admin_user)
    admin_sees_no_reviews_yet(admin_page, screenshots)

    scan_ids = radiographer_uploads_three_formats(open_browser_as(radiographer), screenshots, worker, xray_files)
    assert Prediction.objects.filter(scan_id__in=scan_ids, model_version=browser_model_version).count() == 3

    overridden, confirmed = doctor_overrides_the_top_scan_and_confirms_the_next(
        open_browser_as(doctor), screenshots, scan_ids
    )
    admin_page.reload()
    admin_sees_the_two_reviews(admin_page, screenshots, overridden, confirmed)


def admin_sees_no_reviews_yet(page, screenshots):
    expect(page.get_by_role("heading", name="Accuracy dashboard")).to_be_visible()
    assert page.url.endswith(reverse("dashboard"))
    expect(page.get_by_text("No reviewed scans yet.")).to_be_visible()
    screenshots.take(page, "admin-dashboard-empty")


def radiographer_uploads_three_formats(page, screenshots, worker, xray_files):
    expect(page.get_by_role("heading", name="Patients", exact=True)).to_be_visible()
    screenshots.take(page, "radiographer-start")

    page.get_by_label(re.compile(r"^MRN\b")).fill(PATIENT["mrn"])
    page.get_by_label("Full name").fill(PATIENT["name"])
    page.get_by_label("Date of birth").fill(PATIENT["birth_date"])
    page.get_by_label("Sex").select_option(PATIENT["sex"])
    screenshots.take(page, "radiographer-new-patient")
    page.get_by_role("button", name="Create patient").click()
    expect(page.get_by_role("heading", name=PATIENT["name"])).to_be_visible()
    expect(page.get_by_text("Patient created.", exact=True)).to_be_visible()

    page.get_by_role("link", name="Upload X-rays").click()
    expect(page.get_by_text(f"Patient: {PATIENT['name']} (MRN {PATIENT['mrn']})")).to_be_visible()
    page.get_by_label(re.compile("^X-ray files")).set_input_files(xray_files)
    screenshots.take(page, "radiographer-files-chosen")
    page.get_by_role("button", name="Upload").click()

    expect(page.get_by_role("heading", name="Scans just uploaded")).to_be_visible()
    for path in xray_files:
        expect(page.get_by_text(f"{path.name}: uploaded, queued for the model.")).to_be_visible()
    statuses = page.locator("#scan-status [data-status]")
    expect(statuses).to_have_text(["Queued"] * 3)  # no worker runs yet: nothing can be predicted
    scan_ids = [int(row.get_attribute("data-scan-id")) for row in page.locator("#scan-status tr[data-scan-id]").all()]
    page.evaluate("window.loadedOnce = true")  # gone if the page reloads or navigates
    screenshots.take(page, "radiographer-uploaded-queued")

    worker.start(purge=False)
    try:
        expect(statuses).to_have_text(["Predicted"] * 3, timeout=PREDICTION_TIMEOUT_MS)
    except AssertionError as error:
        raise AssertionError(f"{error}\nWorker log:\n{worker.log_tail()}") from None
    assert page.evaluate("window.loadedOnce === true"), "the status page reloaded to show the new statuses"
    screenshots.take(page, "radiographer-all-predicted")
    return scan_ids


def queue_order(scan_ids):
    """The scans by the queue's rule for scans that have not waited past the cap: most likely
    pneumonia first, then oldest first."""
    predictions = Prediction.objects.filter(scan_id__in=scan_ids).select_related("scan")
    return [p.scan_id for p in sorted(predictions, key=lambda p: (-p.probability, p.scan.uploaded_at, p.scan_id))]


def doctor_overrides_the_top_scan_and_confirms_the_next(page, screenshots, scan_ids):
    expect(page.get_by_role("heading", name="Review queue")).to_be_visible()
    rows = page.locator("#review-queue tbody tr")
    expect(rows).to_have_count(3)
    shown = [int(row.get_attribute("data-scan-id")) for row in rows.all()]
    assert shown == queue_order(scan_ids), "the queue does not show the most likely pneumonia first"
    probabilities = [float(text) for text in rows.locator("td:nth-child(2)").all_inner_texts()]
    assert probabilities == sorted(probabilities, reverse=True)
    screenshots.take(page, "doctor-queue")

    top, second, third = shown
    rows.first.get_by_role("link", name="Review").click()
    expect(page.get_by_role("heading", name=re.compile(rf"^Scan #{top} "))).to_be_visible()
    xray = page.get_by_role("img", name=re.compile("^Chest X-ray"))
    heatmap = page.get_by_role("img", name=re.compile("^Heatmap"))
    for image in (xray, heatmap):
        expect(image).to_be_visible()
        assert image.evaluate("img => img.decode().then(() => img.naturalWidth > 0)"), "an image did not load"
    screenshots.take(page, "doctor-top-scan")
    on_a_tablet(page, screenshots, "doctor-top-scan")

    toggle = page.get_by_role("checkbox", name=re.compile("^Heatmap"))
    toggle.uncheck()
    expect(heatmap).to_be_hidden()
    screenshots.take(page, "doctor-heatmap-off")
    toggle.check()
    expect(heatmap).to_be_visible()
    page.get_by_role("slider", name="Opacity").fill("80")
    expect(heatmap).to_have_css("opacity", "0.8")
    expect(page.locator("#opacity-value")).to_have_text("80%")
    screenshots.take(page, "doctor-heatmap-opacity-80")

    page.get_by_label(re.compile("^Note")).fill(OVERRIDE_NOTE)
    page.get_by_role("button", name=re.compile("^Override")).click()
    expect(page.get_by_text(re.compile(rf"^Scan {top} overridden"))).to_be_visible()
    expect(page.get_by_role("heading", name=re.compile(rf"^Scan #{second} "))).to_be_visible()
    screenshots.take(page, "doctor-overridden-next-scan")

    page.keyboard.press("c")  # the shortcut shown on the page: confirm the model's label
    expect(page.get_by_text(re.compile(rf"^Scan {second} confirmed"))).to_be_visible()
    expect(page.get_by_role("heading", name=re.compile(rf"^Scan #{third} "))).to_be_visible()
    screenshots.take(page, "doctor-confirmed-next-scan")

    overridden, confirmed = Review.objects.get(scan_id=top), Review.objects.get(scan_id=second)
    assert (overridden.decision, overridden.note, overridden.doctor.username) == ("override", OVERRIDE_NOTE, "doctor1")
    assert overridden.final_label == Label.other(overridden.scan.prediction.label)
    assert (confirmed.decision, confirmed.final_label) == ("confirm", confirmed.scan.prediction.label)
    assert not Review.objects.filter(scan_id=third).exists()
    return overridden, confirmed


def expected_matrix(reviews):
    """Confusion-matrix cells (tn, fp, fn, tp) of model label against the doctor's final label."""
    cells = {"tn": 0, "fp": 0, "fn": 0, "tp": 0}
    for review in reviews:
        model_positive = review.scan.prediction.label == Label.PNEUMONIA
        doctor_positive = review.final_label == Label.PNEUMONIA
        cells[("t" if model_positive == doctor_positive else "f") + ("p" if model_positive else "n")] += 1
    return cells


def admin_sees_the_two_reviews(page, screenshots, overridden, confirmed):
    expect(page.locator("#reviewed-count")).to_have_text("2")
    # One of the two reviews agreed with the model.
    # One of two, with its Wilson 95 % interval.
    expect(page.get_by_role("row", name=re.compile("^Accuracy")).get_by_role("cell").first).to_have_text(
        "0.500 [0.095, 0.905]"
    )
    expect(page.get_by_role("row", name=re.compile("^Override rate")).get_by_role("cell").first).to_have_text(
        "0.500 [0.095, 0.905]"
    )
    for cell, count in expected_matrix([overridden, confirmed]).items():
        expect(page.locator(f'#confusion [data-cell="{cell}"]')).to_have_text(str(count))
    for chart in page.locator("img.chart").all():
        assert chart.evaluate("img => img.decode().then(() => img.naturalWidth > 0)"), (
            f"chart {chart.get_attribute('alt')} did not load"
        )
    screenshots.take(page, "admin-dashboard")
    on_a_tablet(page, screenshots, "admin-dashboard")


def on_a_tablet(page, screenshots, step):
    """The page fits a tablet held upright: nothing runs off to the side."""
    laptop = page.viewport_size
    page.set_viewport_size(TABLET)
    try:
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        screenshots.take(page, f"{step}-tablet")
        assert overflow <= 0, f"{step}: the page is {overflow} px wider than a {TABLET['width']} px tablet screen"
    finally:
        page.set_viewport_size(laptop)

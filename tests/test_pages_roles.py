"""The role matrix over every page: each role reaches exactly its pages, anonymous users log in first."""

import re
from pathlib import Path

import pytest
from django.test import Client
from django.urls import get_resolver, reverse

from radiology.web import urls as web_urls
from tests.conftest import logged_in
from tests.factories import ModelVersionFactory, PatientFactory, PredictionFactory, ScanFactory

R, D, A = "radiographer", "doctor", "admin"

# (url name, method, who may, the status they get). Written out by hand rather than derived from
# radiology.permissions, so a wrong entry in the permission table is caught here.
MATRIX = [
    ("patient_list", "get", {R, D}, 200),
    ("patient_create", "get", {R}, 200),
    ("patient_detail", "get", {R, D}, 200),
    ("upload", "get", {R}, 200),
    ("scan_status", "get", {R, A}, 200),
    ("scan_status_json", "get", {R, A}, 200),
    ("scan_image", "get", {R, D}, 200),
    ("scan_heatmap", "get", {D}, 200),
    ("review_queue", "get", {D}, 200),
    ("review_next", "get", {D}, 302),
    ("review", "get", {D}, 200),
    ("reading_heartbeat", "post", {D}, 200),
    ("reading_release", "post", {D}, 204),
    ("show_model_output", "post", {D}, 302),
    ("patient_history", "get", {D}, 200),
    ("dashboard", "get", {A}, 200),
    ("audit_trail", "get", {A}, 200),
    ("audit_trail_csv", "get", {A}, 200),
    ("dashboard_roc_png", "get", {A}, 200),
    ("dashboard_confusion_png", "get", {A}, 200),
    ("failed_scans", "get", {A}, 200),
    ("requeue_scan", "post", {A}, 302),
    ("model_versions", "get", {A}, 200),
    ("activate_model_version", "post", {A}, 302),
    ("record_threshold_from_reviews", "post", {A}, 302),
    ("model_comparison", "get", {A}, 200),
    ("start_challenger", "post", {A}, 302),
    ("promote_challenger", "post", {A}, 302),
    ("end_challenger", "post", {A}, 302),
]
# Every signed-in person's, whatever the role: signing in and out, the session's own endpoints.
NOT_ROLE_PAGES = {
    "login",
    "logout",
    "home",
    "password_reset_confirm",
    "password_reset_complete",
    "session_status",
    "session_keep_alive",
    "password_change",
    "password_change_done",
}


@pytest.fixture
def objects(db, loadable_files):
    prediction = PredictionFactory()
    challenger = ModelVersionFactory(**loadable_files)
    challenger.start_challenge()
    return {
        "challenger": challenger,
        "patient": prediction.scan.patient,
        "scan": prediction.scan,
        "failed": ScanFactory(status="failed", failure_reason="model missing"),
        "version": ModelVersionFactory(**loadable_files),
    }


def url_for(name, objects):
    args = {
        "patient_detail": [objects["patient"].pk],
        "patient_history": [objects["patient"].pk],
        "scan_image": [objects["scan"].pk],
        "scan_heatmap": [objects["scan"].pk],
        "review": [objects["scan"].pk],
        "reading_heartbeat": [objects["scan"].pk],
        "reading_release": [objects["scan"].pk],
        "show_model_output": [objects["scan"].pk],
        "requeue_scan": [objects["failed"].pk],
        "activate_model_version": [objects["version"].pk],
        "record_threshold_from_reviews": [objects["version"].pk],
        "model_comparison": [objects["challenger"].pk],
        "start_challenger": [objects["version"].pk],
        "promote_challenger": [objects["challenger"].pk],
        "end_challenger": [objects["challenger"].pk],
    }.get(name, [])
    url = reverse(name, args=args)
    return url + f"?ids={objects['scan'].pk}" if name == "scan_status_json" else url


def test_the_matrix_covers_every_page():
    names = {pattern.name for pattern in web_urls.urlpatterns}
    assert names - NOT_ROLE_PAGES == {name for name, *_ in MATRIX}
    assert all(get_resolver().reverse_dict.getlist(name) for name in names)


@pytest.mark.parametrize("role", [R, D, A, "no role"])
def test_each_role_reaches_exactly_its_pages(role, objects, radiographer, doctor, admin_user, outsider):
    user = {R: radiographer, D: doctor, A: admin_user, "no role": outsider}[role]
    client = logged_in(user)
    outcomes = {}
    for name, method, allowed, status in MATRIX:
        response = getattr(client, method)(url_for(name, objects))
        outcomes[name] = response.status_code
        if role in allowed:
            assert response.status_code == status, f"{role} should reach {name}"
        else:
            assert response.status_code == 403, f"{role} must be refused {name}"
            assert b"This page is not part of your role" in response.content
    assert len(outcomes) == len(MATRIX)


@pytest.mark.parametrize("name, method", [(name, method) for name, method, *_ in MATRIX])
def test_anonymous_visitors_are_sent_to_log_in(name, method, objects):
    response = getattr(Client(), method)(url_for(name, objects))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=")


def test_refused_posts_change_nothing(objects, doctor_client, radiographer_client):
    doctor_client.post(reverse("requeue_scan", args=[objects["failed"].pk]))
    radiographer_client.post(reverse("activate_model_version", args=[objects["version"].pk]))
    objects["failed"].refresh_from_db()
    objects["version"].refresh_from_db()
    assert objects["failed"].status == "failed"
    assert not objects["version"].is_active


@pytest.mark.parametrize("role, start_page", [(R, "patient_list"), (D, "review_queue"), (A, "dashboard")])
def test_home_sends_each_role_to_its_main_page(role, start_page, radiographer, doctor, admin_user):
    user = {R: radiographer, D: doctor, A: admin_user}[role]
    response = logged_in(user).get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"] == reverse(start_page)


def test_home_refuses_a_user_without_a_role_kindly(outsider):
    response = logged_in(outsider).get(reverse("home"))
    assert response.status_code == 403
    assert b"ask an administrator" in response.content


@pytest.mark.parametrize(
    "role, shown, hidden",
    [
        (R, ["Patients", "Upload", "Scan status"], ["Review queue", "Dashboard", "Failed scans", "Users"]),
        (D, ["Patients", "Review queue"], ["Upload", "Scan status", "Dashboard", "Models"]),
        (A, ["Dashboard", "Failed scans", "Models", "Users", "Scan status"], ["Upload", "Review queue", "Patients"]),
    ],
)
def test_navigation_shows_only_what_the_role_may_do(role, shown, hidden, radiographer, doctor, admin_user):
    user = {R: radiographer, D: doctor, A: admin_user}[role]
    response = logged_in(user).get(reverse("home"), follow=True)
    nav = response.content.decode().split('<nav aria-label="Main">')[1].split("</nav>")[0]
    for label in shown:
        assert f">{label}</a>" in nav
    for label in hidden:
        assert f">{label}</a>" not in nav


def test_login_page_and_logout_by_post(radiographer_client):
    page = Client().get(reverse("login"))
    assert page.status_code == 200
    assert b'name="csrfmiddlewaretoken"' in page.content and b'for="id_username"' in page.content
    assert radiographer_client.get(reverse("logout")).status_code == 405  # a link cannot log anyone out
    assert radiographer_client.post(reverse("logout")).status_code == 302
    assert radiographer_client.get(reverse("patient_list")).status_code == 302


def test_forms_carry_a_csrf_token(radiographer_client):
    PatientFactory()
    for name in ("patient_list", "upload"):
        assert b'name="csrfmiddlewaretoken"' in radiographer_client.get(reverse(name)).content


def test_csrf_is_enforced_on_posts(radiographer):
    client = Client(enforce_csrf_checks=True)
    client.force_login(radiographer)
    response = client.post(
        reverse("patient_create"), {"mrn": "X1", "name": "A B", "birth_date": "2020-01-01", "sex": "F"}
    )
    assert response.status_code == 403


def test_pages_load_nothing_from_outside():
    """Hospitals run offline: every asset comes from static/, no CDN, no web fonts."""
    root = Path(__file__).resolve().parent.parent
    external = re.compile(r"""(src|href|url)\s*[=(]\s*["']?\s*(https?:)?//""", re.IGNORECASE)
    files = [
        *root.joinpath("templates").rglob("*.html"),
        *root.joinpath("static").rglob("*.css"),
        *root.joinpath("static").rglob("*.js"),
    ]
    assert files
    assert [str(f) for f in files if external.search(f.read_text())] == []

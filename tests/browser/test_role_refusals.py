"""Each role, logged in through the real form, is refused the other roles' pages with the 403 page."""

import pytest
from django.urls import reverse
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ANY_PK = 1  # the role is checked before the object is looked up: no object needed
REFUSED = {
    "radiographer": [
        ("review_queue", []),
        ("review", [ANY_PK]),
        ("patient_history", [ANY_PK]),
        ("dashboard", []),
        ("failed_scans", []),
        ("model_versions", []),
    ],
    "doctor": [
        ("upload", []),
        ("patient_create", []),
        ("scan_status", []),
        ("dashboard", []),
        ("failed_scans", []),
        ("model_versions", []),
    ],
    "admin": [
        ("patient_list", []),
        ("patient_create", []),
        ("upload", []),
        ("review_queue", []),
        ("review", [ANY_PK]),
        ("patient_history", [ANY_PK]),
    ],
}
USER_FIXTURES = {"radiographer": "radiographer", "doctor": "doctor", "admin": "admin_user"}


@pytest.mark.parametrize("role", sorted(REFUSED))
def test_each_role_is_refused_the_other_roles_pages(role, request, open_browser_as, screenshots):
    page = open_browser_as(request.getfixturevalue(USER_FIXTURES[role]))
    screenshots.take(page, f"{role}-start")
    for name, args in REFUSED[role]:
        url = reverse(name, args=args)
        response = page.goto(url)
        assert response.status == 403, f"{role} opened {url} (HTTP {response.status})"
        expect(page.get_by_role("heading", name="This page is not part of your role")).to_be_visible()
        screenshots.take(page, f"{role}-refused-{name}")

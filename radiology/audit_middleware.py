"""Audits what requests did, in one place rather than in each view: every read of patient data
(the pages and API endpoints below) and every refusal (403, 409, 429). Query values are never
recorded (a search may hold a name or an MRN): only which parameters were given.

Views that serve a patient's files audit each view themselves (radiology/private_files.py),
and each action that changes data writes its own event (radiology/actions/).
"""

from radiology.actions.audit import audit
from radiology.client_address import client_address

# URL name -> the kind of record it shows. Pages may also answer a POST with the data (a form
# shown again with its errors); the API's POSTs create things and are audited as actions, except
# its searches (POST, so that no name or MRN is in a URL).
PATIENT_DATA_READS = {
    "patient_list": "Patient",
    "patient_detail": "Patient",
    "patient_history": "Patient",
    "review_queue": "Scan",
    "review": "Scan",
    "scan_status": "Scan",  # the page lists patients' names; its JSON poll carries statuses only
    "failed_scans": "Scan",
    "api-patient-list": "Patient",
    "api-patient-search": "Patient",
    "api-patient-detail": "Patient",
    "api-scan-list": "Scan",
    "api-scan-detail": "Scan",
    "api-queue-list": "Scan",
    "pacs_status": "PacsInstance",  # PACS conflicts and skips name patients by their MRN
}
API_SEARCHES = {"api-patient-search"}
REFUSALS = {403, 409, 429}


def is_read(request, name, status):
    if name not in PATIENT_DATA_READS or status != 200:
        return False
    if request.method in ("GET", "HEAD"):
        return True
    return request.method == "POST" and (not name.startswith("api-") or name in API_SEARCHES)


class AuditTrailMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        name = match.view_name if match else ""
        user = getattr(request, "user", None)
        details = {"view": name, "method": request.method, "ip": client_address(request)}
        if response.status_code in REFUSALS:
            audit(
                user, "request.refused", None, after={**details, "status": response.status_code, "path": request.path}
            )
        elif is_read(request, name, response.status_code):
            params = set(request.GET)
            if request.method == "POST":
                params |= set(request.POST) - {"csrfmiddlewaretoken"}
            audit(
                user,
                "patient_data.read",
                None,
                after={**details, "params": sorted(params)},
                object_type=PATIENT_DATA_READS[name],
                object_id=str(match.kwargs.get("pk", "")),
            )
        return response

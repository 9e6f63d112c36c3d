"""Reading claims: which doctor has a scan open for review, so that two doctors don't read the same X-ray.

Opening a scan marks it as read by that doctor for REVIEW_CLAIM_MINUTES; the page renews the claim
while it is open. "Next" takes the first scan in review order that nobody else reads, by
compare-and-set (`UPDATE ... WHERE` the scan is still free): of two doctors pressing "next" at
once, one gets the scan and the other the following one. A claim only steers: a doctor may still
open and review a scan someone else reads (the page says who), and concurrent reviews are settled
by `supersedes` (radiology/actions/clinical.py).
"""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from radiology.models import Scan
from radiology.triage import ReviewQueue, free_to_read, waiting_scans

# Candidates tried before giving up when every one is taken between the read and the update (each
# loss means another doctor took a scan, so the loop ends once the queue is exhausted).
MAX_TRIES = 50


def claim_for_reading(doctor, scan_id, now=None) -> bool:
    """Mark the waiting scan as read by `doctor` (or renew their claim). False when another doctor
    reads it, or it no longer waits for review."""
    now = now or timezone.now()
    until = now + timedelta(minutes=settings.REVIEW_CLAIM_MINUTES)
    return bool(waiting_scans().filter(free_to_read(doctor, now), pk=scan_id).update(read_by=doctor, read_until=until))


def release_reading(doctor, scan_id) -> bool:
    """The doctor leaves the scan: others may take it at once. Only their own claim is released."""
    return bool(Scan.objects.filter(pk=scan_id, read_by=doctor).update(read_by=None, read_until=None))


def reader_of(scan, now=None):
    """Who reads the scan now (a user), or None."""
    now = now or timezone.now()
    return scan.read_by if scan.read_by_id and scan.read_until and scan.read_until >= now else None


def next_scan_to_read(doctor, after=None) -> int | None:
    """Claim for `doctor` the next scan in review order that nobody else reads (after `after`,
    wrapping round, or the top one); its id, or None when there is none. `after`, when the doctor
    held it, is released."""
    chosen = None
    for _ in range(MAX_TRIES):
        queue = ReviewQueue(reader=doctor)
        candidate = queue.id_after(after) if after is not None else queue.first_id()
        if candidate is None or claim_for_reading(doctor, candidate):
            chosen = candidate
            break
    if after is not None and chosen != after:
        release_reading(doctor, after)
    return chosen

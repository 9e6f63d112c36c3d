"""The doctor's queue: most likely pneumonia first, but no scan waits past the cap.

"Most likely" is the prediction's triage score (radiology.models.triage_score): its margin over its
own model version's threshold, in log-odds, so scans predicted by different versions rank together.

Sorting by the AI score alone shortens the mean wait and lengthens the longest ones, so a scan
that has waited longer than TRIAGE_MAX_WAIT_MINUTES since upload jumps ahead, oldest first.
A scan outside the model's intended use (classifier.intended_use) has no score worth sorting by:
it is ordered by its wait with the overdue ones, from the moment it is predicted.

The queue is read in its two parts, each in an order an index serves: the overdue scans by upload
time (the partial index `scan_waiting_for_review`), then the recent ones by score (few: at most the
cap's worth of uploads). A page costs the same with forty scans waiting as with forty thousand.
"""

from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from django.utils.functional import cached_property

from radiology.models import Scan

OVERDUE, RECENT = 0, 1  # `overdue_rank` of each entry, as the page and the API show it


def free_to_read(reader, now):
    """Scans no other doctor is reading: unclaimed, claimed by `reader`, or the claim ran out."""
    return Q(read_by__isnull=True) | Q(read_by=reader) | Q(read_until__lt=now)


def waiting_scans():
    # record_prediction writes the prediction and this status in one transaction.
    return Scan.objects.filter(status=Scan.Status.PREDICTED)


class ReviewQueue:
    """The scans waiting for review in review order, as a sequence that Django's Paginator and
    DRF's pagination slice: `count()` and `queue[start:stop]`, each part queried only as far as the
    slice needs. `narrow` takes a queryset and says what to read of each scan (select_related, only).
    """

    def __init__(self, now=None, narrow=None, reader=None):
        now = now or timezone.now()
        self.overdue_before = now - timedelta(minutes=settings.TRIAGE_MAX_WAIT_MINUTES)
        narrow = narrow or (lambda scans: scans.select_related("patient", "prediction", "prediction__model_version"))
        waiting = waiting_scans()
        if reader is not None:  # what `reader` may take: not a scan another doctor is reading
            waiting = waiting.filter(free_to_read(reader, now))
        recent = Q(uploaded_at__gt=self.overdue_before)
        by_wait = ("uploaded_at", "pk")
        # Read by wait: the overdue scans (every one uploaded before any recent one, so they come
        # first and the partial index serves them), then the recent ones outside intended use;
        # then the rest of the recent ones by score.
        self.parts = [
            narrow(waiting.filter(uploaded_at__lte=self.overdue_before)).order_by(*by_wait),
            narrow(waiting.filter(recent, prediction__intended_use__within=False)).order_by(*by_wait),
            narrow(
                waiting.filter(recent).filter(
                    Q(prediction__intended_use__isnull=True) | Q(prediction__intended_use__within=True)
                )
            ).order_by("-prediction__triage_score", "uploaded_at", "pk"),
        ]

    @cached_property
    def part_counts(self):
        return [part.count() for part in self.parts]

    def count(self):
        return sum(self.part_counts)

    def __len__(self):
        return self.count()

    def __getitem__(self, index):
        if isinstance(index, int):
            entries = self[index : index + 1]
            if not entries:
                raise IndexError(index)
            return entries[0]
        if index.step not in (None, 1) or (index.start or 0) < 0 or (index.stop is not None and index.stop < 0):
            raise ValueError("The review queue takes slices of positive indexes only.")
        start, stop = index.start or 0, index.stop if index.stop is not None else self.count()
        entries, offset = [], 0
        for part, size in zip(self.parts, self.part_counts, strict=True):
            if start < offset + size and stop > offset:
                entries += self.ranked(part[max(0, start - offset) : stop - offset])
            offset += size
        return entries

    def ranked(self, scans):
        """Marks each scan OVERDUE or RECENT by its wait (a recent scan outside intended use is
        read by wait, yet it is not overdue)."""
        scans = list(scans)
        for scan in scans:
            scan.overdue_rank = OVERDUE if scan.uploaded_at <= self.overdue_before else RECENT
        return scans

    def first_id(self, parts=None):
        for part in self.parts if parts is None else parts:
            found = part.values_list("pk", flat=True).first()
            if found is not None:
                return found
        return None

    def id_after(self, scan_id):
        """The scan after `scan_id` in review order, wrapping round to the top; the top one when
        `scan_id` is not waiting; None when nothing else is."""
        scan = waiting_scans().select_related("prediction").filter(pk=scan_id).first()
        if scan is None:
            return self.first_id()
        if scan.uploaded_at <= self.overdue_before or scan.prediction.outside_intended_use:
            position = 0 if scan.uploaded_at <= self.overdue_before else 1
            later = Q(uploaded_at__gt=scan.uploaded_at) | Q(uploaded_at=scan.uploaded_at, pk__gt=scan.pk)
        else:
            position = 2
            score = scan.prediction.triage_score
            later = (
                Q(prediction__triage_score__lt=score)
                | Q(prediction__triage_score=score, uploaded_at__gt=scan.uploaded_at)
                | Q(prediction__triage_score=score, uploaded_at=scan.uploaded_at, pk__gt=scan.pk)
            )
        following = self.first_id([self.parts[position].filter(later), *self.parts[position + 1 :]])
        if following is None:
            top = self.first_id()
            following = top if top != scan.pk else None
        return following

    def ids(self):
        return [scan.pk for scan in self[:]]

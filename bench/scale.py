"""Scale bench: a year of a mid-size hospital's scans in PostgreSQL, then the pages and API calls
that read them, timed in-process (Django's test client, no network).

    .venv/bin/python bench/scale.py --scans 100000          # the default
    .venv/bin/python bench/scale.py --scans 10000 --repeat 30 --json scale-10k.json

It owns its database: `<name of DATABASE_URL's database>_scale` on the same server, dropped and
created again, seeded in bulk (patients, scans, predictions by two model versions, reviews of 60 %
of the scans, some corrected), and dropped at the end unless --keep. --reuse times an existing,
kept database of the same size without seeding it again.

Timed, each --repeat times after two warm-up requests: the review queue page, GET /api/v1/queue/,
review "next", the dashboard (all model versions and one), GET /api/v1/metrics/, the scan list API
and the status page; then the dashboard and GET /api/v1/metrics/ right after a review (the cached
review figures computed again) and right after a new prediction (the flagged counts computed again).
The last line is `scale: N scans: queue p95 X ms, dashboard p95 Y ms, metrics p95 Z ms` (queue: the
slowest of the page, the API and "next"; dashboard and metrics: the slowest of their rows).
"""

import argparse
import datetime
import json
import os
import secrets
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from bench.services import bench_database_url, drop_database, recreate_database  # noqa: E402

BATCH = 10_000
REVIEWED_SHARE = 0.6
CORRECTED_SHARE = 0.02  # of the reviewed scans: a second review replaces the first
SCANS_PER_PATIENT = 4
DAYS = 365


def configure_django(database_url):
    """Production-like settings (DEBUG off: no query log), pointed at the bench's database."""
    os.environ.update(
        DATABASE_URL=database_url,
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="testserver",
        SECURE_SSL_REDIRECT="0",
        SECURE_COOKIES="0",
        API_USER_RATE="1000000/minute",
        LOG_LEVEL="WARNING",
    )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "radiology.settings")
    import django

    django.setup()


# --- seeding ----------------------------------------------------------------------------------------


def seed(n_scans, rng):
    """Bulk rows through the ORM (so that model defaults apply), in batches; returns the model versions."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import connection
    from django.utils import timezone

    from classifier.models import ModelVersion
    from radiology.models import Label, Patient, Prediction, Review, Scan, triage_score
    from radiology.outcomes import rebuild_prediction_summary, rebuild_review_outcomes, rebuild_review_summary

    users = {}
    for role in ("radiographer", "doctor", "admin"):
        user = get_user_model().objects.create_user(role, password=secrets.token_urlsafe(16))
        user.groups.add(Group.objects.get(name=role))
        users[role] = user
    old = ModelVersion.objects.create(version="scale-old", artifact_path="-", sha256="0" * 64, threshold=0.55)
    new = ModelVersion.objects.create(
        version="scale-new", artifact_path="-", sha256="1" * 64, threshold=0.5, is_active=True
    )

    n_patients = max(1, n_scans // SCANS_PER_PATIENT)
    for start in range(0, n_patients, BATCH):
        Patient.objects.bulk_create(
            Patient(mrn=f"SCALE{i:08d}", name=f"Patient {i}", birth_date="1970-01-01", sex="MFO"[i % 3])
            for i in range(start, min(n_patients, start + BATCH))
        )
    patient_ids = list(Patient.objects.order_by("pk").values_list("pk", flat=True))

    now = timezone.now()
    # Oldest first, so that scan ids grow with time as in production.
    ages_s = np.sort(rng.uniform(0, DAYS * 86400, n_scans))[::-1]
    reviewed = rng.random(n_scans) < REVIEWED_SHARE
    pneumonia = rng.random(n_scans) < 0.6
    # Scores: the model separates the classes well but not perfectly.
    probability = np.where(pneumonia, rng.beta(5, 1.5, n_scans), rng.beta(1.5, 5, n_scans)).round(4)
    to_prediction_s = rng.uniform(2, 60, n_scans)
    to_review_s = rng.exponential(3 * 3600, n_scans)
    corrected = reviewed & (rng.random(n_scans) < CORRECTED_SHARE)

    for start in range(0, n_scans, BATCH):
        stop = min(n_scans, start + BATCH)
        uploaded = [now - datetime.timedelta(seconds=float(ages_s[i])) for i in range(start, stop)]
        scans = Scan.objects.bulk_create(
            Scan(
                patient_id=patient_ids[int(rng.integers(len(patient_ids)))],
                image=f"scans/scale/{i}.png",
                image_format="png",
                original_filename=f"{i}.png",
                sha256=f"{i:064x}",
                uploaded_by=users["radiographer"],
                uploaded_at=uploaded[i - start],
                status=Scan.Status.REVIEWED if reviewed[i] else Scan.Status.PREDICTED,
            )
            for i in range(start, stop)
        )
        predictions = []
        for i, scan in zip(range(start, stop), scans, strict=True):
            version = old if ages_s[i] > DAYS * 86400 / 2 else new
            predictions.append(
                Prediction(
                    scan=scan,
                    model_version=version,
                    probability=float(probability[i]),
                    label=Label.PNEUMONIA if probability[i] >= version.threshold else Label.NORMAL,
                    threshold=version.threshold,
                    triage_score=triage_score(float(probability[i]), version.threshold),  # bulk_create skips save()
                    heatmap=f"heatmaps/scale/{i}.png",
                    inference_ms=5.0,
                    created_at=scan.uploaded_at + datetime.timedelta(seconds=float(to_prediction_s[i])),
                )
            )
        Prediction.objects.bulk_create(predictions)
        firsts, corrected_firsts = [], []
        for i, prediction in zip(range(start, stop), predictions, strict=True):
            if not reviewed[i]:
                continue
            truth = Label.PNEUMONIA if pneumonia[i] else Label.NORMAL
            first_truth = Label.other(truth) if corrected[i] else truth
            review = Review(
                scan_id=prediction.scan_id,
                doctor=users["doctor"],
                decision=Review.Decision.CONFIRM if first_truth == prediction.label else Review.Decision.OVERRIDE,
                final_label=first_truth,
                note="" if first_truth == prediction.label else "bench",
                created_at=prediction.created_at + datetime.timedelta(seconds=float(to_review_s[i])),
            )
            firsts.append(review)
            if corrected[i]:
                corrected_firsts.append(review)
        Review.objects.bulk_create(firsts)
        Review.objects.bulk_create(
            Review(
                scan_id=first.scan_id,
                doctor=users["doctor"],
                decision=Review.Decision.OVERRIDE
                if first.decision == Review.Decision.CONFIRM
                else Review.Decision.CONFIRM,
                final_label=Label.other(first.final_label),
                note="bench correction",
                supersedes=first,
                created_at=first.created_at + datetime.timedelta(hours=1),
            )
            for first in corrected_firsts
        )
    rebuild_review_outcomes()
    rebuild_review_summary()
    rebuild_prediction_summary()  # bulk_create bypassed Prediction.save()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")  # as autovacuum leaves a live database: index-only scans possible
    return users, (old, new)


# --- timing -----------------------------------------------------------------------------------------


def timed(client, url, expected_status, repeat, prepare=None):
    for _ in range(2):  # warm-up: templates compiled, connections open, caches filled
        client.get(url)
    times_ms = []
    for _ in range(repeat):
        if prepare is not None:
            prepare()  # not timed
        started = time.perf_counter()
        response = client.get(url)
        times_ms.append((time.perf_counter() - started) * 1000)
        if response.status_code != expected_status:
            raise SystemExit(f"GET {url}: {response.status_code}, expected {expected_status}")
    return {
        "median_ms": float(np.median(times_ms)),
        "p95_ms": float(np.percentile(times_ms, 95)),
        "n": repeat,
    }


def measure(users, versions, repeat):
    from django.test import Client

    clients = {}
    for role, user in users.items():
        clients[role] = Client()
        clients[role].force_login(user)
    newest = versions[1].version
    plan = [
        ("queue page", "doctor", "/review/", 200),
        ("queue API", "doctor", "/api/v1/queue/", 200),
        ("review next", "doctor", "/review/next/", 302),
        ("dashboard, all versions", "admin", "/dashboard/", 200),
        ("dashboard, one version", "admin", f"/dashboard/?model_version={newest}", 200),
        ("metrics API", "admin", "/api/v1/metrics/", 200),
        ("scan list API", "radiographer", "/api/v1/scans/", 200),
        ("status page", "radiographer", "/scans/status/", 200),
    ]
    results = {name: timed(clients[role], url, status, repeat) for name, role, url, status in plan}
    # The dashboard's figures are cached until the next review: the same pages, each right after a
    # doctor's review, are the full computation (measured last: the reviews change the queue).
    review = next_review(users["doctor"])
    for name, url in (
        ("dashboard, after a review", "/dashboard/"),
        ("metrics API, after a review", "/api/v1/metrics/"),
    ):
        results[name] = timed(clients["admin"], url, 200, repeat, prepare=review)
    # The flagged counts are cached until the next prediction: the same pages right after one.
    prediction = next_prediction(users["radiographer"], versions[1])
    for name, url in (
        ("dashboard, after a prediction", "/dashboard/"),
        ("metrics API, after a prediction", "/api/v1/metrics/"),
    ):
        results[name] = timed(clients["admin"], url, 200, repeat, prepare=prediction)
    return results


def next_prediction(radiographer, version):
    """A new upload predicted outside intended use (as the worker records it: Prediction.save())."""
    from django.utils import timezone

    from radiology.models import Label, Patient, Prediction, Scan

    patient = Patient.objects.order_by("pk").first()

    def predict():
        scan = Scan.objects.create(
            patient=patient,
            image="scans/scale/new.png",
            image_format="png",
            original_filename="new.png",
            sha256=secrets.token_hex(32),
            uploaded_by=radiographer,
            status=Scan.Status.PREDICTED,
        )
        Prediction.objects.create(
            scan=scan,
            model_version=version,
            probability=0.7,
            label=Label.PNEUMONIA,
            threshold=version.threshold,
            heatmap="heatmaps/scale/new.png",
            inference_ms=5.0,
            intended_use={"within": False, "reasons": ["view"], "score": None},
            created_at=timezone.now(),
        )

    return predict


def next_review(doctor):
    from radiology.actions import clinical
    from radiology.triage import ReviewQueue

    def review():
        scan = ReviewQueue()[0]
        clinical.review_scan(doctor, scan, "confirm")

    return review


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scans", type=int, default=100_000, help="scans to seed (default %(default)s)")
    parser.add_argument("--repeat", type=int, default=20, help="timed requests per page (default %(default)s)")
    parser.add_argument("--seed", type=int, default=11, help="random seed of the data (default %(default)s)")
    parser.add_argument("--json", type=Path, help="also write the timings to this file")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards (for --reuse)")
    parser.add_argument("--reuse", action="store_true", help="time the kept database without seeding it again")
    args = parser.parse_args(argv)
    if args.scans < 10 or args.repeat < 1:
        parser.error("--scans must be at least 10 and --repeat at least 1")

    server_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/pneumoscan")
    database_url = bench_database_url(server_url, "scale")
    name = urlsplit(database_url).path.lstrip("/")
    if not args.reuse:
        recreate_database(database_url)
    configure_django(database_url)
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connections

    from classifier.models import ModelVersion
    from radiology.models import Scan

    try:
        if args.reuse:
            if Scan.objects.count() != args.scans:
                raise SystemExit(f"--reuse: {name} does not hold {args.scans} scans; run without --reuse")
            users = {user.username: user for user in get_user_model().objects.all()}
            versions = tuple(ModelVersion.objects.filter(version__startswith="scale-").order_by("version").reverse())
        else:
            started = time.perf_counter()
            call_command("migrate", verbosity=0)
            users, versions = seed(args.scans, np.random.default_rng(args.seed))
            print(f"seeded {args.scans} scans in {time.perf_counter() - started:.0f} s", flush=True)
        reviewed = Scan.objects.filter(status=Scan.Status.REVIEWED).count()
        load_before = os.getloadavg()[0]
        results = measure(users, versions, args.repeat)
        load_after = os.getloadavg()[0]
    finally:
        connections.close_all()
        if not (args.keep or args.reuse):
            drop_database(database_url)

    # Timings on a shared machine mean little without how busy it was.
    print(
        f"{args.scans} scans ({reviewed} reviewed), {args.repeat} requests each after two warm-ups; "
        f"load average {load_before:.1f} before, {load_after:.1f} after, on {os.cpu_count()} CPUs:"
    )
    print(f"{'what':<32} {'median ms':>10} {'p95 ms':>10}")
    for what, timing in results.items():
        print(f"{what:<32} {timing['median_ms']:>10.1f} {timing['p95_ms']:>10.1f}")
    queue_p95 = max(results[what]["p95_ms"] for what in ("queue page", "queue API", "review next"))
    dashboard_p95 = max(results[what]["p95_ms"] for what in results if what.startswith("dashboard"))
    metrics_p95 = max(results[what]["p95_ms"] for what in results if what.startswith("metrics API"))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "scans": args.scans,
                    "reviewed": reviewed,
                    "load_average": [load_before, load_after],
                    "cpus": os.cpu_count(),
                    "timings": results,
                },
                indent=2,
            )
        )
    print(
        f"scale: {args.scans} scans: queue p95 {queue_p95:.0f} ms, dashboard p95 {dashboard_p95:.0f} ms, "
        f"metrics p95 {metrics_p95:.0f} ms"
    )


if __name__ == "__main__":
    main()

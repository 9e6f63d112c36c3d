"""Load bench, loopback only: N distinct X-rays uploaded through POST /api/v1/scans/ by several
concurrent clients, against gunicorn and two Celery workers on PostgreSQL and Redis; then it
waits until every upload is predicted and checks that none was lost or predicted twice.

    .venv/bin/python bench/load.py --n 40 --model path/to/model.keras
    .venv/bin/python bench/load.py                      # 500 uploads, the bundled model
    .venv/bin/python bench/load.py --images /work/shared/datasets/kermany-224/train --n 200

By default it owns everything it uses and removes it afterwards: a fresh database
(`pneumoscan_bench`, dropped at the end), its Redis database (emptied), a temporary media
folder, and the processes it started. With --server URL it uses a running server instead and
only adds a user, patients and scans through --database-url. It is bounded: --n uploads and
--timeout seconds in all, then it stops whatever it started. Exit status 0 only when every
upload was accepted and has exactly one prediction.
"""

import argparse
import hashlib
import json
import secrets
import shutil
import sys
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from itertools import zip_longest
from pathlib import Path
from urllib.parse import urlsplit

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from bench.services import (  # noqa: E402
    Processes,
    activate_model,
    child_environment,
    drop_database,
    recreate_database,
    setup_django,
    start_services,
    start_workers,
    wait_for_predictions,
    wait_for_server,
    wait_for_workers,
)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".dcm"}
PATIENTS = 10  # uploads are spread over a few patients, as on a ward
THROTTLE_RETRIES = 5


@dataclass
class Upload:
    index: int
    filename: str
    started: float  # wall clock (time.time()), comparable with the database's timestamps
    latency_s: float = 0.0
    status: int = 0
    scan_id: int | None = None
    duplicate: bool = False
    throttled: int = 0
    error: str = ""


# --- the images ---------------------------------------------------------------------------


def generated_images(n, size=224):
    """n distinct synthetic chest X-rays (PNG): each seed gives different noise and lungs."""
    from tests.support.images import chest_like_pixels, png_bytes

    return [
        (f"generated-{i:04d}.png", png_bytes(chest_like_pixels(size=size, seed=i, bright_lungs=i % 2 == 1)))
        for i in range(n)
    ]


def folder_images(folder, n):
    """n distinct files (by content) under `folder`, taken in turn from each subfolder (NORMAL,
    PNEUMONIA...) so the mix is like a ward's; a duplicate would be refused as such."""
    by_folder = defaultdict(list)
    for path in sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        by_folder[path.parent].append(path)
    chosen, seen = [], set()
    for path in (p for group in zip_longest(*by_folder.values()) for p in group if p is not None):
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest not in seen:
            seen.add(digest)
            chosen.append((path.name, data))
        if len(chosen) == n:
            return chosen
    raise SystemExit(f"{folder} holds only {len(chosen)} distinct images; asked for {n}.")


# --- the clinical setup, through the ORM --------------------------------------------------


def create_uploader_and_patients(run_id):
    """An integration account (as a PACS bridge uses) with an API token, and the patients the X-rays belong to."""
    import datetime

    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from radiology.actions import clinical, tokens
    from radiology.permissions import INTEGRATION

    user = get_user_model().objects.create_user(f"bench-{run_id}", password=secrets.token_urlsafe(24))
    user.groups.add(Group.objects.get(name=INTEGRATION))
    token = tokens.issue_api_token(None, user, replace=True).key
    patients = [
        clinical.create_patient(
            None,
            mrn=f"BENCH-{run_id}-{i:02d}",
            name=f"Bench Patient {i:02d}",
            birth_date=datetime.date(2018, 1, 1 + i),
            sex="F" if i % 2 else "M",
        )
        for i in range(PATIENTS)
    ]
    return token, [patient.pk for patient in patients]


# --- the load -----------------------------------------------------------------------------


def upload_all(base_url, token, patient_ids, images, clients, deadline):
    import requests

    local = threading.local()

    def session():
        if not hasattr(local, "session"):
            local.session = requests.Session()
            local.session.headers["Authorization"] = f"Token {token}"
        return local.session

    def send(index):
        filename, data = images[index]
        record = Upload(index, filename, started=time.time())
        for _ in range(THROTTLE_RETRIES + 1):
            if time.monotonic() > deadline:
                record.error = "not sent: time is up"
                return record
            record.started, began = time.time(), time.perf_counter()
            try:
                response = session().post(
                    f"{base_url}/api/v1/scans/",
                    data={"patient": patient_ids[index % len(patient_ids)]},
                    files={"image": (filename, data)},
                    timeout=120,
                )
            except requests.RequestException as error:
                record.error = f"{type(error).__name__}: {error}"
                return record
            record.latency_s, record.status = time.perf_counter() - began, response.status_code
            if response.status_code != 429:
                break
            record.throttled += 1
            time.sleep(min(float(response.headers.get("Retry-After", 1)), 10))
        if response.status_code in (200, 201):
            body = response.json()
            record.scan_id, record.duplicate = body["id"], bool(body.get("duplicate"))
        else:
            record.error = response.text[:300]
        return record

    with ThreadPoolExecutor(max_workers=clients) as pool:
        return list(pool.map(send, range(len(images))))


def check_outcome(base_url, token, uploads, patient_ids, clients):
    """Every accepted upload: one scan of its own, exactly one prediction, recorded once."""
    import requests
    from django.db.models import Count

    from radiology.models import AuditEvent, Prediction, Scan

    accepted = [u for u in uploads if u.scan_id is not None]
    scan_ids = [u.scan_id for u in accepted]
    predictions = {p.scan_id: p for p in Prediction.objects.filter(scan_id__in=scan_ids)}
    recorded = dict(
        AuditEvent.objects.filter(action="scan.predicted", object_type="Scan", object_id__in=[str(i) for i in scan_ids])
        .order_by()
        .values("object_id")
        .annotate(n=Count("pk"))
        .values_list("object_id", "n")
    )

    def api_prediction(scan_id):
        response = requests.get(
            f"{base_url}/api/v1/scans/{scan_id}/", headers={"Authorization": f"Token {token}"}, timeout=60
        )
        return response.status_code == 200 and response.json().get("prediction") is not None

    with ThreadPoolExecutor(max_workers=clients) as pool:
        seen_by_api = sum(pool.map(api_prediction, scan_ids))
    failures = dict(Scan.objects.filter(pk__in=scan_ids, status=Scan.Status.FAILED).values_list("pk", "failure_reason"))
    return {
        "accepted": len(accepted),
        "refused": len(uploads) - len(accepted),
        "reported_duplicate": sum(u.duplicate for u in accepted),
        "scans_stored": Scan.objects.filter(patient_id__in=patient_ids).count(),
        "distinct_scans": len(set(scan_ids)),
        "predicted": len(predictions),
        "predicted_via_api": seen_by_api,
        "failed": len(failures),
        "lost": sum(1 for i in scan_ids if i not in predictions),
        "duplicated": sum(1 for n in recorded.values() if n > 1),
        "failure_reasons": sorted(set(failures.values()))[:5],
        "errors": sorted({u.error for u in uploads if u.error})[:5],
        "throttled_retries": sum(u.throttled for u in uploads),
    }, predictions


def percentile(values, fraction):
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def summary(uploads, predictions, upload_seconds, outcome, setup):
    latencies = [u.latency_s for u in uploads if u.scan_id is not None]
    to_prediction = [
        predictions[u.scan_id].created_at.timestamp() - u.started for u in uploads if u.scan_id in predictions
    ]
    inference_ms = [p.inference_ms for p in predictions.values()]
    return {
        **setup,
        "uploads_per_s": round(len(latencies) / upload_seconds, 2) if upload_seconds else None,
        "upload_seconds": round(upload_seconds, 2),
        "upload_latency_p50_s": round(percentile(latencies, 0.5) or 0, 3),
        "upload_latency_p95_s": round(percentile(latencies, 0.95) or 0, 3),
        "time_to_prediction_p50_s": round(percentile(to_prediction, 0.5) or 0, 2),
        "time_to_prediction_p95_s": round(percentile(to_prediction, 0.95) or 0, 2),
        "inference_ms_p50": round(percentile(inference_ms, 0.5) or 0, 1),
        **outcome,
    }


def passed(result, n):
    return (
        result["accepted"] == n
        and result["distinct_scans"] == n
        and result["scans_stored"] == n
        and result["predicted"] == n
        and result["predicted_via_api"] == n
        and result["lost"] == 0
        and result["duplicated"] == 0
        and result["reported_duplicate"] == 0
    )


def print_result(result, ok):
    print("\nLoad bench result")
    for key, value in result.items():
        print(f"  {key:26} {value}")
    print(
        "PASS: every upload has exactly one prediction (0 lost, 0 duplicated)." if ok else "FAIL: see the counts above."
    )


# --- the run ------------------------------------------------------------------------------


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=500, help="uploads (default 500)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent upload clients (threads; default 8)")
    parser.add_argument("--images", type=Path, help="a folder of X-rays to upload (default: generated ones)")
    parser.add_argument(
        "--model", type=Path, help="a model artifact (.keras) to register and activate (default: the bundled model)"
    )
    parser.add_argument(
        "--timeout", type=float, default=1200, help="seconds for the whole run, uploads and predictions (default 1200)"
    )
    parser.add_argument(
        "--server",
        help="use the server already running at this loopback URL (and its workers) instead of starting them",
    )
    parser.add_argument(
        "--database-url",
        default="postgres://postgres@127.0.0.1:5432/pneumoscan_bench",
        help="without --server: the bench's own database, dropped and created again (default %(default)s); "
        "with --server: the running server's database, where it adds a user, patients and scans",
    )
    parser.add_argument(
        "--broker-url",
        default="redis://127.0.0.1:6379/13",
        help="the Redis database for its tasks (default %(default)s)",
    )
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn worker processes (default 2)")
    parser.add_argument("--json", type=Path, help="also write the result to this file")
    parser.add_argument("--keep", action="store_true", help="keep the database and media folder for inspection")
    args = parser.parse_args(argv)
    if args.server and urlsplit(args.server).hostname not in ("127.0.0.1", "localhost", "::1"):
        parser.error("--server must be a loopback address: this bench never loads another machine")
    if not 1 <= args.n <= 5000 or not 1 <= args.clients <= 64:
        parser.error("--n must be 1..5000 and --clients 1..64")
    return args


def main(argv=None):
    args = parse_arguments(argv)
    deadline = time.monotonic() + args.timeout
    run_id = secrets.token_hex(3)
    work = Path(tempfile.mkdtemp(prefix="pneumoscan-bench-"))
    processes = None if args.server else Processes(work)
    owns_services = processes is not None
    django_ready = False
    print(f"Preparing {args.n} distinct images...", flush=True)
    images = folder_images(args.images, args.n) if args.images else generated_images(args.n)
    try:
        environment = child_environment(args.database_url, args.broker_url, work)
        if owns_services:
            print(
                f"Fresh database {urlsplit(args.database_url).path.lstrip('/')}, empty Redis {args.broker_url}",
                flush=True,
            )
            recreate_database(args.database_url)
            import redis

            redis.Redis.from_url(args.broker_url).flushdb()
            base_url = start_services(processes, environment, args.web_workers)
        else:
            base_url = args.server.rstrip("/")
        setup_django(environment)
        django_ready = True
        model_version = activate_model(args.model)
        token, patient_ids = create_uploader_and_patients(run_id)
        if owns_services:
            start_workers(processes, environment, 2)
            wait_for_server(base_url, processes)
            wait_for_workers(2, processes)
        print(f"Uploading to {base_url} from {args.clients} clients, model {model_version}...", flush=True)
        began = time.perf_counter()
        uploads = upload_all(base_url, token, patient_ids, images, args.clients, deadline)
        upload_seconds = time.perf_counter() - began
        scan_ids = [u.scan_id for u in uploads if u.scan_id is not None]
        print(f"{len(scan_ids)} uploads accepted in {upload_seconds:.1f}s; waiting for predictions...", flush=True)
        wait_for_predictions(scan_ids, deadline, processes)
        outcome, predictions = check_outcome(base_url, token, uploads, patient_ids, args.clients)
        setup = {
            "n": args.n,
            "clients": args.clients,
            "web_workers": args.web_workers if owns_services else "external",
            "celery_workers": 2 if owns_services else "external",
            "model_version": model_version,
            "images": str(args.images) if args.images else "generated 224x224 PNG",
        }
        result = summary(uploads, predictions, upload_seconds, outcome, setup)
        ok = passed(result, args.n)
        print_result(result, ok)
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "passed": ok,
                        **result,
                        "slowest_uploads": [asdict(u) for u in sorted(uploads, key=lambda u: -u.latency_s)[:3]],
                    },
                    indent=2,
                    default=str,
                )
            )
        return 0 if ok else 1
    except RuntimeError as error:
        print(f"Bench stopped: {error}", file=sys.stderr)
        return 2
    finally:
        if processes:
            processes.stop()
        if django_ready:
            from django.db import connections

            connections.close_all()
        if owns_services and not args.keep:
            drop_database(args.database_url)
        if args.keep:
            print(f"Kept: database {args.database_url}, files and logs in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

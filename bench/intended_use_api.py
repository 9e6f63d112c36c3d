"""Intended-use flag rates as the acceptance of issue 9 measures them: through the upload API and a
real Celery worker, not by calling the Predictor on image files (`check_intended_use`).

    .venv/bin/python bench/intended_use_api.py \\
        --folder child:../shared/datasets/kermany-224/site-calibration \\
        --folder child:../shared/datasets/ood-dev/adult-chest \\
        --folder adult:../shared/datasets/kermany-224/site-calibration \\
        --folder child:../shared/datasets/ood-dev/not-xray \\
        --folder child:../shared/datasets/ood-dev/lateral-chest [--limit 3] [--model PATH]

Each image (PNG or JPEG under the folder, searched recursively) is uploaded with
POST /api/v1/scans/ by an integration account, for a patient of its own that the same account
creates with POST /api/v1/patients/: a `child` birth date (ages 1 to 5 in turn on the upload date)
or an `adult` one (40 years). Once the worker has predicted every accepted upload, a doctor reads
`prediction.intended_use` from GET /api/v1/scans/{id}/. Printed per folder: uploads sent, refused at
upload (by reason), failed in the worker, predicted, flagged outside intended use (by reason; a
scan may have several) and the share of the predicted scans flagged.

It owns what it uses (bench/services.py): the database `<DATABASE_URL's database>_intended_use`,
dropped and created again and dropped at the end; the Redis database of --broker-url, emptied;
gunicorn and one Celery worker; a temporary media folder. The model is the active one as the app
registers it (settings.CLASSIFIER_MODEL_PATH, the bundled model) unless --model names another.
"""

import argparse
import datetime
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from bench.services import (  # noqa: E402
    Processes,
    activate_model,
    bench_database_url,
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

# Not DICOM: a DICOM file's own patient ID and study date would override the bench's patient and
# upload date (the age is taken on the study date).
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
CHILD_AGES = (1, 2, 3, 4, 5)  # the bundled model's population, every age in turn
ADULT_AGE = 40
REFUSED_PREFIX = "Refused, nothing stored. "


def folder_argument(text):
    kind, _, folder = text.partition(":")
    if kind not in ("child", "adult") or not folder:
        raise argparse.ArgumentTypeError(f"{text!r}: give child:FOLDER or adult:FOLDER")
    if not Path(folder).is_dir():
        raise argparse.ArgumentTypeError(f"{folder} is not a folder")
    return kind, Path(folder)


def images_in(folder, limit):
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return paths[:limit] if limit else paths


def birth_date(kind, index, on_date):
    """A birth date giving the age in whole years on `on_date`: 100 days past a birthday, so that
    the age is the same on any day of the run."""
    age = CHILD_AGES[index % len(CHILD_AGES)] if kind == "child" else ADULT_AGE
    return on_date - datetime.timedelta(days=round(age * 365.25) + 100)


def api_session(token):
    import requests

    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"
    return session


def create_accounts(run_id):
    """An integration account (uploads, as a PACS bridge or script does) and a doctor (reads the
    predictions), each with an API token: accounts are an admin's work, done here through the ORM."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from radiology.actions import tokens
    from radiology.permissions import DOCTOR, INTEGRATION

    keys = {}
    for role in (INTEGRATION, DOCTOR):
        user = get_user_model().objects.create_user(f"iu-{role}-{run_id}", password=secrets.token_urlsafe(24))
        user.groups.add(Group.objects.get(name=role))
        keys[role] = tokens.issue_api_token(None, user, replace=True).key
    return keys[INTEGRATION], keys[DOCTOR]


def upload_folder(api, uploader, number, kind, folder, limit, today):
    """Uploads each image for a new patient -> {"sent", "refused": Counter, "scan_ids"}."""
    result = {"sent": 0, "refused": Counter(), "scan_ids": []}
    for index, path in enumerate(images_in(folder, limit)):
        patient = uploader.post(
            f"{api}/patients/",
            json={
                "mrn": f"IU-{number}-{index:04d}",
                "name": f"Bench {kind.title()} {number}-{index:04d}",
                "birth_date": birth_date(kind, index, today).isoformat(),
                "sex": "MF"[index % 2],
            },
            timeout=60,
        )
        patient.raise_for_status()
        answer = uploader.post(
            f"{api}/scans/",
            data={"patient": patient.json()["id"]},
            files={"image": (path.name, path.read_bytes())},
            timeout=120,
        )
        result["sent"] += 1
        if answer.status_code == 201:
            result["scan_ids"].append(answer.json()["id"])
        elif answer.status_code == 400 and "image" in answer.json()["error"].get("fields", {}):
            result["refused"][answer.json()["error"]["fields"]["image"][0].removeprefix(REFUSED_PREFIX)] += 1
        else:
            raise RuntimeError(f"upload of {path}: {answer.status_code} {answer.text[:300]}")
    return result


def read_outcomes(api, doctor, result):
    """What the doctor's API says of each accepted upload: failed, or predicted and flagged (by reason)."""
    result.update(failed=0, predicted=0, flagged=0, reasons=Counter())
    for scan_id in result["scan_ids"]:
        answer = doctor.get(f"{api}/scans/{scan_id}/", timeout=60)
        answer.raise_for_status()
        scan = answer.json()
        if scan["status"] == "failed":
            result["failed"] += 1
        elif scan.get("prediction") is None:
            raise RuntimeError(f"scan {scan_id} is {scan['status']} without a prediction after the wait")
        else:
            result["predicted"] += 1
            intended_use = scan["prediction"]["intended_use"]
            if not intended_use["within"]:
                result["flagged"] += 1
                result["reasons"].update(intended_use["reasons"])
    return result


def print_table(rows):
    print("\n| folder | birth dates | sent | refused at upload | failed | predicted | flagged (by reason) | flagged |")
    print("|---|---|---|---|---|---|---|---|")
    for kind, folder, result in rows:
        ages = f"child (ages {CHILD_AGES[0]}-{CHILD_AGES[-1]})" if kind == "child" else f"adult ({ADULT_AGE})"
        refused = sum(result["refused"].values())
        reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(result["reasons"].items()))
        share = f"{100 * result['flagged'] / result['predicted']:.1f} %" if result["predicted"] else "-"
        print(
            f"| {folder} | {ages} | {result['sent']} | {refused} | {result['failed']} | {result['predicted']} "
            f"| {result['flagged']}{f' ({reasons})' if reasons else ''} | {share} |"
        )
    for kind, folder, result in rows:
        for reason, n in result["refused"].most_common():
            print(f"refused, {kind}:{folder}: {n} x {reason}")


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--folder", type=folder_argument, action="append", required=True, help="child:FOLDER or adult:FOLDER"
    )
    parser.add_argument("--limit", type=int, help="at most N images per folder (the first by name)")
    parser.add_argument("--model", type=Path, help="a model artifact (.keras) to register and activate")
    parser.add_argument(
        "--broker-url",
        default="redis://127.0.0.1:6379/12",
        help="a Redis database of its own for the tasks, emptied first (default %(default)s)",
    )
    parser.add_argument("--timeout", type=float, default=3600, help="seconds for the predictions (default 3600)")
    args = parser.parse_args(argv)

    server_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/pneumoscan")
    database_url = bench_database_url(server_url, "intended_use")
    run_id = secrets.token_hex(3)
    work = Path(tempfile.mkdtemp(prefix="pneumoscan-intended-use-"))
    processes = Processes(work)
    environment = child_environment(database_url, args.broker_url, work)
    environment["API_USER_RATE"] = "1000000/minute"  # one client sends every upload: not a test of the limits
    recreate_database(database_url)
    django_ready = False
    try:
        import redis

        redis.Redis.from_url(args.broker_url).flushdb()
        base_url = start_services(processes, environment, web_workers=1)
        setup_django(environment)
        django_ready = True
        model_version = activate_model(args.model)
        integration_token, doctor_token = create_accounts(run_id)
        start_workers(processes, environment, 1)
        wait_for_server(base_url, processes)
        wait_for_workers(1, processes)

        from django.utils import timezone

        api, today = f"{base_url}/api/v1", timezone.localdate()
        uploader, doctor = api_session(integration_token), api_session(doctor_token)
        print(f"Model {model_version}; uploading to {base_url} on {today}...", flush=True)
        rows = []
        for number, (kind, folder) in enumerate(args.folder):
            result = upload_folder(api, uploader, number, kind, folder, args.limit, today)
            print(f"  {kind}:{folder}: {len(result['scan_ids'])} of {result['sent']} accepted", flush=True)
            rows.append((kind, folder, result))
        scan_ids = [scan_id for _, _, result in rows for scan_id in result["scan_ids"]]
        wait_for_predictions(scan_ids, time.monotonic() + args.timeout, processes)
        for _, _, result in rows:
            read_outcomes(api, doctor, result)
        print(f"\nModel {model_version}, through POST /api/v1/scans/ and one Celery worker, {today}:")
        print_table(rows)
        return 0
    except RuntimeError as error:
        print(f"Bench stopped: {error}", file=sys.stderr)
        return 2
    finally:
        processes.stop()
        if django_ready:
            from django.db import connections

            connections.close_all()
        drop_database(database_url)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

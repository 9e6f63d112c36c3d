"""What refusing a decompression bomb costs: time and memory of radiology.ingest.decode_upload.

    DEBUG=1 python bench/decode_bombs.py

Each file is generated (tests/support/dicom_bombs.py) and decoded in a fresh process, which
reports the wall time, the peak of Python's traced allocations (tracemalloc, numpy included)
and how far the process's peak resident memory grew. The last row reads the issue's file with
plain `pydicom.dcmread`, which inflates it whole: what the bounded reader avoids.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CASES = {
    "issue 10's Deflated file (800 frames of 512x512, no Number of Frames)": "dicom_bombs.issue_bomb()",
    "uncompressed, 40 undeclared 512x512 16-bit frames": ("dicom_with_frames(np.zeros((40, 512, 512), np.uint16))"),
    "RLE frame whose segment decodes 64x past the header (2 MB)": (
        "dicom_bombs.encapsulated_dicom(dicom_bombs.rle_frame([b'\\x81\\x00' * 1_000_000]), RLELossless, 512, 512, 8)"
    ),
    "JPEG 2000 frame of 4000x4000 under a 512x512 header": (
        "dicom_bombs.encapsulated_dicom(dicom_bombs.jpeg_2000_frame(np.zeros((4000, 4000), np.uint16)), "
        "JPEG2000Lossless, 512, 512, 16)"
    ),
}

PROBE = """
import io, json, resource, sys, time, tracemalloc
import django
django.setup()
import numpy as np
from pydicom import dcmread
from pydicom.uid import JPEG2000Lossless, RLELossless
from radiology.ingest import RejectedUpload, decode_upload
from tests.support import dicom_bombs
from tests.support.images import dicom_bytes

def dicom_with_frames(frames):
    dataset = dcmread(io.BytesIO(dicom_bytes(pixels=frames[0])))
    dataset.PixelData = frames.tobytes()
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    return out.getvalue()

data = {expression}
decode = dcmread if {plain} else decode_upload
rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tracemalloc.start()
started = time.perf_counter()
try:
    decode(io.BytesIO(data)) if {plain} else decode(data)
    outcome = "read" if {plain} else "ACCEPTED"
except RejectedUpload as refusal:
    outcome = "refused: " + str(refusal)
seconds = time.perf_counter() - started
peak = tracemalloc.get_traced_memory()[1]
rss_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
print(json.dumps({{"size": len(data), "seconds": seconds, "peak_mb": peak / 2**20,
                  "rss_growth_mb": rss_growth / 1024, "outcome": outcome}}))
"""


def measure(expression, plain=False):
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "radiology.settings", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(expression=expression, plain=plain)],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    print("| file | size | time | traced peak | RSS growth | outcome |")
    print("|---|---|---|---|---|---|")
    rows = [(name, measure(expression)) for name, expression in CASES.items()]
    rows.append(("the issue's file through plain `pydicom.dcmread`", measure("dicom_bombs.issue_bomb()", plain=True)))
    for name, row in rows:
        print(
            f"| {name} | {row['size'] / 1024:,.0f} KB | {row['seconds']:.2f} s | {row['peak_mb']:.1f} MB "
            f"| {row['rss_growth_mb']:.1f} MB | {row['outcome'][:90]} |"
        )


if __name__ == "__main__":
    main()

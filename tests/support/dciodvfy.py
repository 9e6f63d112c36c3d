"""dciodvfy (Debian's dicom3tools): David Clunie's validator of DICOM objects against their IOD."""

import shutil
import subprocess
from pathlib import Path


def dciodvfy_errors(data: bytes, folder: Path) -> list[str]:
    """The validator's error lines for one DICOM object (its warnings are not errors)."""
    path = folder / "object.dcm"
    path.write_bytes(data)
    result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]


def dciodvfy_missing():
    return None if shutil.which("dciodvfy") else "dciodvfy is not installed (Debian package dicom3tools)"

"""The demo checkout's own settings: `var/local.env`, written by `make run`, read by manage.py.

So that every command in the README works in a `make run` checkout without exporting anything:
a generated SECRET_KEY and DEBUG=1 (demo only). What the environment sets wins over the file.
Production sets its environment and has no such file.
"""

import os
import secrets
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def local_env_path():
    return Path(os.environ.get("VAR_DIR", BASE_DIR / "var")) / "local.env"


def read_local_env(path):
    """KEY=VALUE lines; blank lines and # comments ignored."""
    values = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


def apply_local_env():
    """Fill what the environment does not set from var/local.env, when the file exists."""
    path = local_env_path()
    if path.is_file():
        for key, value in read_local_env(path).items():
            os.environ.setdefault(key, value)


def write_local_env():
    """Create var/local.env once (readable by its owner only); an existing file is kept as it is."""
    path = local_env_path()
    if path.exists():
        return path, False
    path.parent.mkdir(parents=True, exist_ok=True)
    content = (
        "# Written by `make run` for this demo checkout; manage.py reads it. Not for production.\n"
        f"SECRET_KEY={secrets.token_urlsafe(50)}\n"
        "DEBUG=1\n"
    )
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(content)
    return path, True


if __name__ == "__main__":
    written, created = write_local_env()
    print(f"{'Wrote' if created else 'Using'} {written} (SECRET_KEY, DEBUG=1 for this demo checkout).")

#!/usr/bin/env python
import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "radiology.settings")
    from radiology.local_env import apply_local_env

    apply_local_env()  # a `make run` checkout: its generated SECRET_KEY and DEBUG=1
    from django.core.management import execute_from_command_line
    from django.db.utils import OperationalError, ProgrammingError

    try:
        execute_from_command_line(sys.argv)
    except (OperationalError, ProgrammingError) as error:
        hint = database_hint(str(error))
        if hint is None:
            raise
        sys.exit(hint)


def database_hint(message):
    """One line saying what to run first, for a database that is not there or not set up yet."""
    if "no such table" in message or ("relation" in message and "does not exist" in message):
        return (
            "The database has no tables yet: run `.venv/bin/python manage.py migrate` first "
            "(`make run` does it and sets up the demo)."
        )
    if "connection" in message and ("refused" in message or "failed" in message):
        return f"Cannot reach the database ({message.splitlines()[0]}): start it, or set DATABASE_URL."
    return None


if __name__ == "__main__":
    main()

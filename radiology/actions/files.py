"""Stored files that follow their rows: a file written inside a transaction is deleted when it rolls
back, and `cleanup_orphans` removes what no row names (a process killed between writing a file and
committing its row, or a rollback of a transaction around the action)."""

import time
from dataclasses import dataclass
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.db import models

from radiology.actions.audit import audit


def delete_stored_file(field_file):
    if field_file and field_file.name:
        field_file.storage.delete(field_file.name)


@dataclass(frozen=True)
class OrphanFile:
    name: str  # relative to MEDIA_ROOT, as a FileField stores it
    size: int
    age_s: float


def stored_names() -> set[str]:
    """Every file name a row names, in every model's file fields."""
    names = set()
    for model in apps.get_models():
        for field in model._meta.get_fields():
            if isinstance(field, models.FileField):
                names.update(model._default_manager.exclude(**{field.name: ""}).values_list(field.name, flat=True))
    return names


def orphan_files(older_than_s: float) -> list[OrphanFile]:
    """Files under MEDIA_ROOT that no row names, written more than `older_than_s` ago (a younger
    one may belong to a transaction still open)."""
    root = Path(settings.MEDIA_ROOT)
    if not root.is_dir():
        return []
    now = time.time()
    candidates = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            stat = path.stat()
            if now - stat.st_mtime > older_than_s:
                candidates.append(OrphanFile(path.relative_to(root).as_posix(), stat.st_size, now - stat.st_mtime))
    named = stored_names()  # read after the walk: a row committed meanwhile keeps its file
    return [orphan for orphan in candidates if orphan.name not in named]


def remove_orphan_files(older_than_s: float) -> list[OrphanFile]:
    root = Path(settings.MEDIA_ROOT)
    removed = []
    for orphan in orphan_files(older_than_s):
        (root / orphan.name).unlink(missing_ok=True)
        removed.append(orphan)
    if removed:
        audit(None, "media.orphans_removed", None, after={"files": [o.name for o in removed]})
    return removed

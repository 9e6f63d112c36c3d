"""The one Celery app: configured from Django settings prefixed CELERY_."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "radiology.settings")

app = Celery("radiology")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

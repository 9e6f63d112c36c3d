"""Celery tasks of the PACS connection, run by the beat schedule when PACS_DICOMWEB_URL is set."""

from celery import shared_task

from radiology.pacs.client import pacs_configured


@shared_task
def poll_pacs():
    from radiology.pacs.ingest import poll_pacs as poll

    if not pacs_configured():
        return "no PACS configured"
    report = poll()
    return report.error or dict(report.outcomes)


@shared_task
def send_outbox():
    from radiology.pacs.outbox import send_due

    if not pacs_configured():
        return "no PACS configured"
    return send_due()

"""Check the audit trail's hash chain: `python manage.py verify_audit` (exit status 1 on damage)."""

from django.core.management.base import BaseCommand, CommandError

from radiology.audit_chain import chain_problems
from radiology.models import AuditChainHead, AuditEvent


class Command(BaseCommand):
    help = "Verify the audit trail's hash chain: reports every edited, inserted or deleted event."

    def handle(self, *args, **options):
        events = AuditEvent.objects.order_by("pk").iterator(chunk_size=2000)
        problems = chain_problems(events, AuditChainHead.objects.filter(pk=1).first())
        if problems:
            for problem in problems:
                self.stderr.write(problem)
            raise CommandError(f"The audit trail has been tampered with: {len(problems)} problem(s).")
        self.stdout.write(f"Audit trail intact: {AuditEvent.objects.count()} events, chain unbroken.")

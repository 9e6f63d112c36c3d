from django.apps import AppConfig
from django.db.models.signals import post_migrate


class RadiologyConfig(AppConfig):
    name = "radiology"
    verbose_name = "Radiology workflow"

    def ready(self):
        from radiology.permissions import ensure_roles

        post_migrate.connect(ensure_roles, sender=self)

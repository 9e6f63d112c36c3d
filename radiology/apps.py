from django.apps import AppConfig
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import post_migrate, pre_save


class RadiologyConfig(AppConfig):
    name = "radiology"
    verbose_name = "Radiology workflow"

    def ready(self):
        from django.conf import settings

        from radiology import signals
        from radiology.ingest import limit_pillow
        from radiology.permissions import ensure_roles

        limit_pillow(settings.MAX_IMAGE_PIXELS)
        post_migrate.connect(ensure_roles, sender=self)
        user_logged_in.connect(signals.audit_login, dispatch_uid="radiology.audit_login")
        user_logged_out.connect(signals.audit_logout, dispatch_uid="radiology.audit_logout")
        user_login_failed.connect(signals.audit_login_failed, dispatch_uid="radiology.audit_login_failed")
        pre_save.connect(
            signals.revoke_tokens_on_credential_change,
            sender=settings.AUTH_USER_MODEL,
            dispatch_uid="radiology.revoke_tokens_on_credential_change",
        )

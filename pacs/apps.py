from django.apps import AppConfig


class PacsConfig(AppConfig):
    name = "pacs"
    verbose_name = "Archive"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from corsheaders.signals import check_request_enabled

        from pacs.services.config import cors_request_allowed

        # CORS origins are runtime configuration, checked per request (see CORS_ALLOWED_ORIGINS in settings).
        check_request_enabled.connect(cors_request_allowed, dispatch_uid="pacs.cors_request_allowed")

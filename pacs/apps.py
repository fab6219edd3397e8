from django.apps import AppConfig


class PacsConfig(AppConfig):
    name = "pacs"
    verbose_name = "Archive"
    default_auto_field = "django.db.models.BigAutoField"

from django.apps import AppConfig


class PrintingConfig(AppConfig):
    name = "printing"
    verbose_name = "Print"
    default_auto_field = "django.db.models.BigAutoField"

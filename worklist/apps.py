from django.apps import AppConfig


class WorklistConfig(AppConfig):
    name = "worklist"
    verbose_name = "Modality worklist"
    default_auto_field = "django.db.models.BigAutoField"

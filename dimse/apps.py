from django.apps import AppConfig


class DimseConfig(AppConfig):
    name = "dimse"
    verbose_name = "DICOM network"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from dimse.jobs import JOB_KINDS
        from pacs.services.jobs import job_kind_register

        for kind, runner in JOB_KINDS.items():
            job_kind_register(kind, runner)

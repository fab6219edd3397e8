from django.apps import AppConfig


class PrintingConfig(AppConfig):
    name = "printing"
    verbose_name = "Print"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from pacs.services.jobs import job_kind_register

        # Print gateway: forward printed films to a DICOM printer (printing.services.forwarding).
        job_kind_register("print-forward", "printing.services.forwarding.print_forward_run")

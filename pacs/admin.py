"""Admin for the archive index (read-mostly: rows are written by services) and its policies."""

from django.contrib import admin

from pacs.models import ArchiveConfig, Instance, Job, Patient, Series, Study


class ReadOnlyIndexAdmin(admin.ModelAdmin):
    """Index rows are written by ingest; the admin shows and searches them."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Patient)
class PatientAdmin(ReadOnlyIndexAdmin):
    list_display = ("patient_name", "patient_id", "issuer_of_patient_id", "patient_birth_date", "patient_sex",
                    "number_of_patient_related_studies", "number_of_patient_related_instances")
    search_fields = ("patient_id", "patient_name", "patient_name_alphabetic", "patient_name_ideographic")
    list_filter = ("patient_sex",)


class SeriesInline(admin.TabularInline):
    model = Series
    fields = ("series_number", "modality", "series_description", "number_of_series_related_instances", "source_aet")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(Study)
class StudyAdmin(ReadOnlyIndexAdmin):
    list_display = ("study_date", "patient_name", "patient_id", "accession_number", "modalities_in_study",
                    "study_description", "number_of_study_related_series", "number_of_study_related_instances")
    search_fields = ("study_instance_uid", "accession_number", "study_description", "patient__patient_id",
                     "patient__patient_name", "patient__patient_name_ideographic")
    list_filter = ("study_date", "modalities_in_study")
    date_hierarchy = "study_date"
    list_select_related = ("patient",)
    inlines = [SeriesInline]

    @admin.display(ordering="patient__patient_name")
    def patient_name(self, obj: Study) -> str:
        return obj.patient.patient_name

    @admin.display(ordering="patient__patient_id")
    def patient_id(self, obj: Study) -> str:
        return obj.patient.patient_id


@admin.register(Series)
class SeriesAdmin(ReadOnlyIndexAdmin):
    list_display = ("series_instance_uid", "modality", "series_number", "series_description", "body_part_examined",
                    "source_aet", "source_address", "number_of_series_related_instances")
    search_fields = ("series_instance_uid", "series_description", "study__study_instance_uid")
    list_filter = ("modality", "source_aet")


@admin.register(Instance)
class InstanceAdmin(ReadOnlyIndexAdmin):
    list_display = ("sop_instance_uid", "instance_number", "sop_class_uid", "transfer_syntax_uid", "rows",
                    "columns", "number_of_frames", "file_size", "received_at")
    search_fields = ("sop_instance_uid", "series__series_instance_uid", "series__study__study_instance_uid")
    list_filter = ("transfer_syntax_uid", "sop_class_uid")


@admin.register(ArchiveConfig)
class ArchiveConfigAdmin(admin.ModelAdmin):
    list_display = ("__str__", "duplicate_policy", "update_attributes", "min_free_mb", "compression", "path_template")

    def has_add_permission(self, request) -> bool:
        return not ArchiveConfig.objects.exists()

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "description", "state", "progress_done", "progress_failed", "progress_total",
                    "attempts", "created_at", "finished_at")
    list_filter = ("kind", "state")
    search_fields = ("description",)
    readonly_fields = [f.name for f in Job._meta.fields]
    actions = ["retry_jobs"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Re-run selected jobs")
    def retry_jobs(self, request, queryset) -> None:
        from pacs.services.jobs import job_retry

        for job in queryset:
            try:
                job_retry(job_id=job.pk)
            except ValueError as exc:
                self.message_user(request, str(exc))

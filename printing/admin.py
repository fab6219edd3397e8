"""Admin of the printing app: print jobs (read-only, deleted through the service) and forwarding rules."""

from __future__ import annotations

from django.contrib import admin

from printing.models import Film, PrintForwardRule, PrintJob
from printing.services.print_jobs import print_job_delete


class FilmInline(admin.TabularInline):
    model = Film
    fields = [
        "film_number",
        "image_display_format",
        "film_size_id",
        "film_orientation",
        "number_of_images",
        "rows",
        "columns",
        "sop_instance_uid",
    ]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(PrintJob)
class PrintJobAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "created_at",
        "calling_aet",
        "status",
        "number_of_films",
        "number_of_images",
        "film_session_label",
        "failure_reason",
    ]
    list_filter = ["status", "calling_aet"]
    search_fields = ["calling_aet", "film_session_label", "film_session_uid"]
    date_hierarchy = "created_at"
    inlines = [FilmInline]
    readonly_fields = [field.name for field in PrintJob._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def delete_model(self, request, obj) -> None:
        print_job_delete(job_id=obj.pk)

    def delete_queryset(self, request, queryset) -> None:
        for job_id in queryset.values_list("pk", flat=True):
            print_job_delete(job_id=job_id)


@admin.register(PrintForwardRule)
class PrintForwardRuleAdmin(admin.ModelAdmin):
    list_display = ["calling_aet", "printer", "enabled", "description"]
    list_filter = ["enabled"]
    list_editable = ["enabled"]

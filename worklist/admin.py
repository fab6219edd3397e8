"""Admin of the worklist: items with their steps (edited through the services), MPPS records read-only."""

from __future__ import annotations

import copy

from django import forms
from django.contrib import admin
from django.forms.models import construct_instance

from worklist.models import PerformedProcedureStep, PerformedSeries, ScheduledProcedureStep, WorklistItem
from worklist.services.items import worklist_item_admin_save, worklist_item_errors, worklist_step_admin_save


class ScheduledProcedureStepInline(admin.StackedInline):
    model = ScheduledProcedureStep
    extra = 0
    min_num = 1
    fields = (
        ("scheduled_procedure_step_id", "scheduled_procedure_step_status"),
        ("modality", "scheduled_station_ae_title", "scheduled_station_name", "scheduled_procedure_step_location"),
        ("scheduled_procedure_step_start_date", "scheduled_procedure_step_start_time"),
        "scheduled_procedure_step_description",
        "scheduled_performing_physician_name",
    )


class WorklistItemForm(forms.ModelForm):
    """Runs the service's checks (PN groups, UID, uniqueness) so errors show on the form."""

    class Meta:
        model = WorklistItem
        fields = "__all__"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        uid = self.fields["study_instance_uid"]
        uid.required = False
        uid.help_text = "Pre-assigned Study Instance UID; generated when left empty."

    def clean(self):
        cleaned = super().clean()
        candidate = construct_instance(self, copy.copy(self.instance))
        for keyword, problems in worklist_item_errors(item=candidate).items():
            self.add_error(None, f"{keyword}: {'; '.join(map(str, problems))}")
        return cleaned


@admin.register(WorklistItem)
class WorklistItemAdmin(admin.ModelAdmin):
    form = WorklistItemForm
    list_display = ("patient_name", "patient_id", "accession_number", "requested_procedure_description",
                    "modalities", "first_start", "statuses")
    search_fields = ("patient_name", "patient_name_alphabetic", "patient_name_ideographic", "patient_id",
                     "accession_number", "requested_procedure_id", "study_instance_uid")
    list_filter = ("steps__modality", "steps__scheduled_procedure_step_status", "steps__scheduled_station_ae_title",
                   "steps__scheduled_procedure_step_start_date", "requested_procedure_priority")
    readonly_fields = ("patient_name_alphabetic", "patient_name_ideographic", "patient_name_phonetic",
                       "created_at", "updated_at")
    fieldsets = (
        ("Patient", {"fields": ("patient_name", ("patient_id", "issuer_of_patient_id"),
                                ("patient_birth_date", "patient_sex"), "admission_id",
                                ("patient_name_alphabetic", "patient_name_ideographic", "patient_name_phonetic"))}),
        ("Requested procedure", {"fields": (("accession_number", "requested_procedure_id"),
                                            "requested_procedure_description", "requested_procedure_priority",
                                            "referring_physician_name", "study_instance_uid")}),
        ("Record", {"fields": ("created_at", "updated_at")}),
    )
    inlines = [ScheduledProcedureStepInline]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("steps")

    @admin.display(description="Modality")
    def modalities(self, obj) -> str:
        return ", ".join(sorted({s.modality for s in obj.steps.all() if s.modality}))

    @admin.display(description="First start")
    def first_start(self, obj) -> str:
        dates = [s.scheduled_procedure_step_start_date for s in obj.steps.all()]
        dates = [d for d in dates if d]
        return min(dates).isoformat() if dates else ""

    @admin.display(description="Status")
    def statuses(self, obj) -> str:
        return ", ".join(s.scheduled_procedure_step_status for s in obj.steps.all())

    def save_model(self, request, obj, form, change) -> None:
        worklist_item_admin_save(item=obj)

    def save_formset(self, request, form, formset, change) -> None:
        steps = formset.save(commit=False)
        for step in formset.deleted_objects:
            step.delete()
        for step in steps:
            worklist_step_admin_save(step=step)


class PerformedSeriesInline(admin.TabularInline):
    model = PerformedSeries
    extra = 0
    can_delete = False
    fields = ("series_instance_uid", "series_description", "retrieve_ae_title", "number_of_referenced_instances")
    readonly_fields = fields


@admin.register(PerformedProcedureStep)
class PerformedProcedureStepAdmin(admin.ModelAdmin):
    """MPPS records are written by modalities (N-CREATE/N-SET): shown, never edited."""

    list_display = ("sop_instance_uid", "performed_procedure_step_status", "modality", "performed_station_ae_title",
                    "patient_id", "accession_number", "performed_procedure_step_start_date", "updated_at")
    list_filter = ("performed_procedure_step_status", "modality", "performed_station_ae_title")
    search_fields = ("sop_instance_uid", "patient_id", "patient_name", "accession_number", "study_instance_uid",
                     "performed_series__series_instance_uid")
    inlines = [PerformedSeriesInline]
    exclude = ("scheduled_steps", "attributes")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

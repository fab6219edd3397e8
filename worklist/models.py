"""Modality worklist: requested procedures, their scheduled steps, and MPPS records.

A :class:`WorklistItem` is one Requested Procedure of an Imaging Service Request
(PS3.3 C.4.11) for one patient; its :class:`ScheduledProcedureStep` rows are the
items of the Scheduled Procedure Step Sequence (PS3.3 C.4.10) that the Modality
Worklist C-FIND returns one response per (PS3.4 K.6.1.2).  A
:class:`PerformedProcedureStep` is one MPPS SOP instance (PS3.3 C.4.13/C.4.14)
created and updated by a modality with N-CREATE / N-SET (PS3.4 F.7).

Rows are written only by :mod:`worklist.services`.  Text is stored as decoded
Unicode; person names keep the full PN value and its component groups.
"""

from __future__ import annotations

from django.db import models

from worklist.choices import PatientSex, PerformedStepStatus, Priority, StepStatus


class WorklistItem(models.Model):
    """Requested Procedure with its patient and Imaging Service Request attributes.

    Rows are written only by ``worklist_item_create`` / ``worklist_item_update`` /
    ``worklist_item_delete`` and housekeeping (``worklist_items_purge``).
    """

    # Full PN value ("WANG^XIAOMING=王^小明") and its component groups (PS3.5 6.2.1).
    patient_name = models.CharField(max_length=324, blank=True)
    patient_name_alphabetic = models.CharField(max_length=324, blank=True, db_index=True)
    patient_name_ideographic = models.CharField(max_length=324, blank=True, db_index=True)
    patient_name_phonetic = models.CharField(max_length=324, blank=True)
    patient_id = models.CharField(max_length=64, db_index=True)
    issuer_of_patient_id = models.CharField(max_length=64, blank=True)
    patient_birth_date = models.DateField(null=True, blank=True)
    patient_sex = models.CharField(max_length=1, choices=PatientSex.choices, blank=True)
    accession_number = models.CharField(max_length=16, blank=True, db_index=True)
    referring_physician_name = models.CharField(max_length=324, blank=True)
    requested_procedure_id = models.CharField(max_length=16, blank=True, db_index=True)
    requested_procedure_description = models.CharField(max_length=64, blank=True)
    requested_procedure_priority = models.CharField(max_length=8, choices=Priority.choices, blank=True)
    # Pre-assigned so every image the modality sends lands in one study (IHE SWF).
    study_instance_uid = models.CharField(max_length=64, unique=True)
    admission_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.accession_number or self.requested_procedure_id or self.pk} [{self.patient_id}]"


class ScheduledProcedureStep(models.Model):
    """One item of the Scheduled Procedure Step Sequence (0040,0100) of a worklist item.

    Rows are written only by the worklist item services and by MPPS
    (``performed_step_create`` / ``performed_step_update`` move the status).
    """

    item = models.ForeignKey(to="worklist.WorklistItem", on_delete=models.CASCADE, related_name="steps")
    scheduled_procedure_step_id = models.CharField(max_length=16, blank=True)
    scheduled_procedure_step_description = models.CharField(max_length=64, blank=True)
    modality = models.CharField(max_length=16, blank=True)
    scheduled_station_ae_title = models.CharField(max_length=16, blank=True)
    scheduled_station_name = models.CharField(max_length=16, blank=True)
    scheduled_procedure_step_location = models.CharField(max_length=16, blank=True)
    scheduled_procedure_step_start_date = models.DateField(null=True, blank=True)
    scheduled_procedure_step_start_time = models.TimeField(null=True, blank=True)
    scheduled_performing_physician_name = models.CharField(max_length=324, blank=True)
    scheduled_procedure_step_status = models.CharField(
        max_length=16, choices=StepStatus.choices, default=StepStatus.SCHEDULED
    )
    # When the status last changed: housekeeping ages COMPLETED/DISCONTINUED steps by it.
    status_changed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["scheduled_procedure_step_start_date", "scheduled_procedure_step_start_time", "id"]
        indexes = [
            # The modality query: today's schedulable steps for my station / modality.
            models.Index(
                fields=["scheduled_procedure_step_status", "scheduled_procedure_step_start_date", "modality"],
                name="worklist_sps_status_date_idx",
            ),
            # Station-specific worklists (ScheduledStationAETitle = the modality's AE).
            models.Index(
                fields=["scheduled_station_ae_title", "scheduled_procedure_step_start_date"],
                name="worklist_sps_station_date_idx",
            ),
            # Housekeeping: final steps older than the retention period.
            models.Index(
                fields=["scheduled_procedure_step_status", "status_changed_at"], name="worklist_sps_purge_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.scheduled_procedure_step_id or self.pk} {self.modality} {self.scheduled_procedure_step_status}"


class PerformedProcedureStep(models.Model):
    """Modality Performed Procedure Step SOP instance (PS3.4 F.7, PS3.3 C.4.13-C.4.14).

    Created by N-CREATE, updated by N-SET; the full attribute list received so
    far is kept as DICOM JSON in ``attributes``.  Rows are written only by
    ``performed_step_create`` / ``performed_step_update``.
    """

    sop_instance_uid = models.CharField(max_length=64, unique=True)
    performed_procedure_step_status = models.CharField(max_length=16, choices=PerformedStepStatus.choices)
    performed_procedure_step_id = models.CharField(max_length=16, blank=True)
    performed_procedure_step_description = models.CharField(max_length=64, blank=True)
    performed_station_ae_title = models.CharField(max_length=16, blank=True)
    performed_station_name = models.CharField(max_length=16, blank=True)
    performed_location = models.CharField(max_length=16, blank=True)
    performed_procedure_step_start_date = models.DateField(null=True, blank=True)
    performed_procedure_step_start_time = models.TimeField(null=True, blank=True)
    performed_procedure_step_end_date = models.DateField(null=True, blank=True)
    performed_procedure_step_end_time = models.TimeField(null=True, blank=True)
    modality = models.CharField(max_length=16, blank=True)
    study_instance_uid = models.CharField(max_length=64, blank=True, db_index=True)
    accession_number = models.CharField(max_length=16, blank=True)
    patient_id = models.CharField(max_length=64, blank=True)
    patient_name = models.CharField(max_length=324, blank=True)
    # Reason for discontinuation: Code Meaning of (0040,0281) when given.
    discontinuation_reason = models.CharField(max_length=64, blank=True)
    calling_ae_title = models.CharField(max_length=16, blank=True)
    # References: a worklist step can be removed by housekeeping; the record stays.
    scheduled_steps = models.ManyToManyField(
        to="worklist.ScheduledProcedureStep", related_name="performed_steps", blank=True
    )
    attributes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.sop_instance_uid} {self.performed_procedure_step_status}"


class PerformedSeries(models.Model):
    """One item of the Performed Series Sequence (0040,0340) of an MPPS.

    The archive's ``pacs.Series`` with the same UID (it may arrive before or
    after the MPPS) is resolved by UID, not by a foreign key.  Written only by
    the MPPS services.
    """

    performed_step = models.ForeignKey(
        to="worklist.PerformedProcedureStep", on_delete=models.CASCADE, related_name="performed_series"
    )
    series_instance_uid = models.CharField(max_length=64, db_index=True)
    series_description = models.CharField(max_length=64, blank=True)
    performing_physician_name = models.CharField(max_length=324, blank=True)
    retrieve_ae_title = models.CharField(max_length=16, blank=True)
    number_of_referenced_instances = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["performed_step", "series_instance_uid"],
                name="%(app_label)s_%(class)s_unique_step_series",
            )
        ]

    def __str__(self) -> str:
        return self.series_instance_uid

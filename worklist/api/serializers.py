"""Worklist items as JSON with DICOM keywords as field names.

``{"PatientName": "WANG^XIAOMING=王^小明", "PatientID": "P001", ...,
"ScheduledProcedureStepSequence": [{"Modality": "CT", ...}]}``.  Dates are DICOM
DA (``YYYYMMDD``, ``YYYY-MM-DD`` accepted), times DICOM TM (``HHMMSS``,
``HH:MM:SS`` accepted).  Unknown keys are refused, never dropped silently.
"""

from __future__ import annotations

import datetime
import re

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from worklist.choices import PatientSex, Priority, StepStatus
from worklist.dicom import dicom_value


@extend_schema_field({"type": "string", "pattern": r"^\d{8}$", "example": "20261121"})
class DicomDateField(serializers.Field):
    """DICOM DA ``YYYYMMDD`` (also ``YYYY-MM-DD``) <-> date."""

    default_error_messages = {"invalid": "{value!r} is not a date; use YYYYMMDD (e.g. 20261121)."}

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        text = str(data).strip()
        if not text:
            return None
        match = re.fullmatch(r"(\d{4})-?(\d{2})-?(\d{2})", text)
        try:
            if not match:
                raise ValueError
            return datetime.date(*(int(part) for part in match.groups()))
        except ValueError:
            self.fail("invalid", value=text)

    def to_representation(self, value):
        return dicom_value("DA", value) or ""


@extend_schema_field({"type": "string", "pattern": r"^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$", "example": "093000"})
class DicomTimeField(serializers.Field):
    """DICOM TM ``HH[MM[SS[.FFFFFF]]]`` (also ``HH:MM[:SS]``) <-> time."""

    default_error_messages = {"invalid": "{value!r} is not a time; use HHMMSS (e.g. 093000)."}

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        text = str(data).strip().replace(":", "")
        if not text:
            return None
        match = re.fullmatch(r"(\d{2})(\d{2})?(\d{2})?(?:\.(\d{1,6}))?", text)
        try:
            if not match:
                raise ValueError
            hour, minute, second, fraction = match.groups()
            return datetime.time(int(hour), int(minute or 0), int(second or 0), int((fraction or "0").ljust(6, "0")))
        except ValueError:
            self.fail("invalid", value=str(data))

    def to_representation(self, value):
        return dicom_value("TM", value) or ""


def _text(source: str, max_length: int, **kwargs) -> serializers.CharField:
    return serializers.CharField(source=source, max_length=max_length, required=False, allow_blank=True, **kwargs)


def _code(source: str, **kwargs) -> serializers.CharField:
    # CS / AE: upper-case letters, digits, space, underscore (PS3.5 6.2); AE any printable.
    return serializers.CharField(source=source, max_length=16, required=False, allow_blank=True, **kwargs)


def _person_name(source: str, **kwargs) -> serializers.CharField:
    return serializers.CharField(
        source=source, max_length=194, required=False, allow_blank=True,
        help_text="DICOM PN: alphabetic=ideographic=phonetic groups, components separated by ^.", **kwargs
    )


class _KeywordSerializer(serializers.Serializer):
    """Refuses keys that are not fields (a typo must not vanish silently)."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields) - {"id"})
            if unknown:
                raise serializers.ValidationError(
                    {key: ["unknown key; use the DICOM keywords listed in the API schema"] for key in unknown}
                )
        return super().to_internal_value(data)


class ScheduledProcedureStepSerializer(_KeywordSerializer):
    """One item of the Scheduled Procedure Step Sequence (0040,0100)."""

    ScheduledProcedureStepID = _text("scheduled_procedure_step_id", 16)
    ScheduledProcedureStepDescription = _text("scheduled_procedure_step_description", 64)
    Modality = _code("modality")
    ScheduledStationAETitle = _code("scheduled_station_ae_title")
    ScheduledStationName = _text("scheduled_station_name", 16)
    ScheduledProcedureStepLocation = _text("scheduled_procedure_step_location", 16)
    ScheduledProcedureStepStartDate = DicomDateField(source="scheduled_procedure_step_start_date")
    ScheduledProcedureStepStartTime = DicomTimeField(source="scheduled_procedure_step_start_time")
    ScheduledPerformingPhysicianName = _person_name("scheduled_performing_physician_name")
    ScheduledProcedureStepStatus = serializers.ChoiceField(
        source="scheduled_procedure_step_status", choices=StepStatus.choices, required=False
    )


class WorklistItemSerializer(_KeywordSerializer):
    """A worklist item (Requested Procedure) in the keyword form."""

    id = serializers.IntegerField(read_only=True)
    PatientName = _person_name("patient_name")
    PatientID = serializers.CharField(source="patient_id", max_length=64)
    IssuerOfPatientID = _text("issuer_of_patient_id", 64)
    PatientBirthDate = DicomDateField(source="patient_birth_date")
    PatientSex = serializers.ChoiceField(source="patient_sex", choices=PatientSex.choices, required=False,
                                         allow_blank=True)
    AccessionNumber = _text("accession_number", 16)
    ReferringPhysicianName = _person_name("referring_physician_name")
    RequestedProcedureID = _text("requested_procedure_id", 16)
    RequestedProcedureDescription = _text("requested_procedure_description", 64)
    RequestedProcedurePriority = serializers.ChoiceField(
        source="requested_procedure_priority", choices=Priority.choices, required=False, allow_blank=True
    )
    StudyInstanceUID = serializers.CharField(
        source="study_instance_uid", max_length=64, required=False, allow_blank=True,
        help_text="Pre-assigned Study Instance UID; generated when not given.",
    )
    AdmissionID = _text("admission_id", 64)
    ScheduledProcedureStepSequence = ScheduledProcedureStepSerializer(
        source="steps", many=True, required=True, allow_empty=False
    )

    def get_fields(self):
        fields = super().get_fields()
        if self.partial:
            fields["ScheduledProcedureStepSequence"].required = False
        return fields


class PerformedSeriesSerializer(serializers.Serializer):
    SeriesInstanceUID = serializers.CharField(source="series_instance_uid")
    SeriesDescription = serializers.CharField(source="series_description")
    PerformingPhysicianName = serializers.CharField(source="performing_physician_name")
    RetrieveAETitle = serializers.CharField(source="retrieve_ae_title")
    NumberOfReferencedInstances = serializers.IntegerField(source="number_of_referenced_instances")


class PerformedProcedureStepSerializer(serializers.Serializer):
    """An MPPS record (read-only: modalities write it with N-CREATE/N-SET)."""

    SOPInstanceUID = serializers.CharField(source="sop_instance_uid")
    PerformedProcedureStepStatus = serializers.CharField(source="performed_procedure_step_status")
    PerformedProcedureStepID = serializers.CharField(source="performed_procedure_step_id")
    PerformedProcedureStepDescription = serializers.CharField(source="performed_procedure_step_description")
    PerformedStationAETitle = serializers.CharField(source="performed_station_ae_title")
    PerformedStationName = serializers.CharField(source="performed_station_name")
    PerformedProcedureStepStartDate = DicomDateField(source="performed_procedure_step_start_date")
    PerformedProcedureStepStartTime = DicomTimeField(source="performed_procedure_step_start_time")
    PerformedProcedureStepEndDate = DicomDateField(source="performed_procedure_step_end_date")
    PerformedProcedureStepEndTime = DicomTimeField(source="performed_procedure_step_end_time")
    Modality = serializers.CharField(source="modality")
    StudyInstanceUID = serializers.CharField(source="study_instance_uid")
    AccessionNumber = serializers.CharField(source="accession_number")
    PatientID = serializers.CharField(source="patient_id")
    PatientName = serializers.CharField(source="patient_name")
    DiscontinuationReason = serializers.CharField(source="discontinuation_reason")
    PerformedSeriesSequence = PerformedSeriesSerializer(source="performed_series", many=True)
    scheduled_step_ids = serializers.SerializerMethodField()

    @extend_schema_field(serializers.ListField(child=serializers.IntegerField()))
    def get_scheduled_step_ids(self, obj) -> list[int]:
        return [step.pk for step in obj.scheduled_steps.all()]

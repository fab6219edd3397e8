"""Modality Worklist matching keys (PS3.4 K.6.1.2, Table K.6-1).

Only the worklist-specific field tables live here; value matching (single
value, wildcards, date/time ranges open on either side, UID lists, universal
matching, person-name component groups) is :func:`pacs.matching.value_q`, the
one implementation shared with C-FIND and QIDO-RS.

A worklist query is answered with one response per Scheduled Procedure Step,
so every key is expressed from :class:`worklist.models.ScheduledProcedureStep`:
the keys of the Requested Procedure / patient sit behind ``item__``, and the
keys inside the Scheduled Procedure Step Sequence (0040,0100) are the step's
own fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from django.db.models import Q

from pacs.matching import MatchingError, keyword_normalise, value_q
from worklist.choices import SCHEDULABLE_STATUSES, StepStatus

SPS_SEQUENCE = "ScheduledProcedureStepSequence"
STATUS_KEY = "ScheduledProcedureStepStatus"
# Keys that steer the query and match nothing.
CONTROL_KEYS = frozenset({"SpecificCharacterSet", "TimezoneOffsetFromUTC"})


@dataclass(frozen=True)
class WorklistKey:
    """One worklist attribute: keyword, VR, model field (and PN component-group columns)."""

    keyword: str
    vr: str
    field: str
    columns: tuple[str, ...] = ()

    @property
    def target(self) -> str | tuple[str, ...]:
        return self.columns if self.columns else self.field


def _pn(keyword: str, field: str, groups: bool = False) -> WorklistKey:
    columns = (field, f"{field}_alphabetic", f"{field}_ideographic") if groups else (field,)
    return WorklistKey(keyword, "PN", field, columns)


# Requested Procedure, Imaging Service Request, Visit and Patient keys (Table K.6-1),
# as fields of WorklistItem.
ITEM_KEYS: dict[str, WorklistKey] = {
    key.keyword: key
    for key in [
        _pn("PatientName", "patient_name", groups=True),
        WorklistKey("PatientID", "LO", "patient_id"),
        WorklistKey("IssuerOfPatientID", "LO", "issuer_of_patient_id"),
        WorklistKey("PatientBirthDate", "DA", "patient_birth_date"),
        WorklistKey("PatientSex", "CS", "patient_sex"),
        WorklistKey("AccessionNumber", "SH", "accession_number"),
        _pn("ReferringPhysicianName", "referring_physician_name"),
        WorklistKey("RequestedProcedureID", "SH", "requested_procedure_id"),
        WorklistKey("RequestedProcedureDescription", "LO", "requested_procedure_description"),
        WorklistKey("RequestedProcedurePriority", "SH", "requested_procedure_priority"),
        WorklistKey("StudyInstanceUID", "UI", "study_instance_uid"),
        WorklistKey("AdmissionID", "LO", "admission_id"),
    ]
}

# Keys inside the Scheduled Procedure Step Sequence, as fields of ScheduledProcedureStep.
STEP_KEYS: dict[str, WorklistKey] = {
    key.keyword: key
    for key in [
        WorklistKey("ScheduledProcedureStepID", "SH", "scheduled_procedure_step_id"),
        WorklistKey("ScheduledProcedureStepDescription", "LO", "scheduled_procedure_step_description"),
        WorklistKey("Modality", "CS", "modality"),
        WorklistKey("ScheduledStationAETitle", "AE", "scheduled_station_ae_title"),
        WorklistKey("ScheduledStationName", "SH", "scheduled_station_name"),
        WorklistKey("ScheduledProcedureStepLocation", "SH", "scheduled_procedure_step_location"),
        WorklistKey("ScheduledProcedureStepStartDate", "DA", "scheduled_procedure_step_start_date"),
        WorklistKey("ScheduledProcedureStepStartTime", "TM", "scheduled_procedure_step_start_time"),
        _pn("ScheduledPerformingPhysicianName", "scheduled_performing_physician_name"),
        WorklistKey(STATUS_KEY, "CS", "scheduled_procedure_step_status"),
    ]
}


def key_name(key: str) -> str:
    """The DICOM keyword of *key* (keyword or 8-digit hex tag), '' when it is neither."""
    return keyword_normalise(str(key))


def _item_path(key: WorklistKey) -> str | tuple[str, ...]:
    if key.columns:
        return tuple(f"item__{column}" for column in key.columns)
    return f"item__{key.field}"


def worklist_q(
    filters: Mapping[str, object], step_filters: Mapping[str, object], *, schedulable_only: bool = True
) -> tuple[Q, list[str]]:
    """``Q`` over ScheduledProcedureStep for a worklist query.

    Parameters
    ----------
    filters
        ``{keyword: value}`` of the top-level identifier (patient, requested
        procedure, ...); values are DICOM strings, ``""`` = universal.
    step_filters
        ``{keyword: value}`` of the one item of the Scheduled Procedure Step
        Sequence.
    schedulable_only
        Without a ScheduledProcedureStepStatus value only SCHEDULED and
        ARRIVED steps match: a modality must not be offered work that is
        already done.  The REST API lists every status (False).

    Returns
    -------
    (Q, unsupported)
        The filter, and the keywords that carried a value this archive cannot
        match (the SCP answers them empty with status 0xFF01).

    Raises
    ------
    MatchingError
        A malformed value (0xC000) or a key that is no DICOM keyword (0xA900).
    """
    q = Q()
    unsupported: list[str] = []
    for raw_key, value in filters.items():
        keyword = _checked(raw_key)
        if keyword in CONTROL_KEYS or keyword == SPS_SEQUENCE:
            continue
        key = ITEM_KEYS.get(keyword)
        if key is None:
            if _has_value(value):
                unsupported.append(keyword)
            continue
        matched = value_q(_item_path(key), key.vr, value, keyword=keyword)
        if matched is not None:
            q &= matched
    status_given = False
    for raw_key, value in step_filters.items():
        keyword = _checked(raw_key)
        key = STEP_KEYS.get(keyword)
        if key is None:
            if _has_value(value):
                unsupported.append(keyword)
            continue
        if keyword == STATUS_KEY and _has_value(value):
            status_given = True
            _status_check(value)
        matched = value_q(key.target, key.vr, value, keyword=keyword)
        if matched is not None:
            q &= matched
    if schedulable_only and not status_given:
        q &= Q(scheduled_procedure_step_status__in=SCHEDULABLE_STATUSES)
    return q, unsupported


def _checked(raw_key: str) -> str:
    keyword = key_name(raw_key)
    if not keyword:
        raise MatchingError(f"{raw_key!r} is not a DICOM keyword or tag")
    return keyword


def _has_value(value: object) -> bool:
    if isinstance(value, (list, tuple)):
        return any(str(v).strip() for v in value)
    return value is not None and str(value).strip() not in ("", "*")


def _status_check(value: object) -> None:
    values = value if isinstance(value, (list, tuple)) else str(value).split("\\")
    known = set(StepStatus.values)
    for single in values:
        text = str(single).strip()
        if text and "*" not in text and "?" not in text and text not in known:
            raise MatchingError(
                f"{STATUS_KEY} {text!r} is not one of {', '.join(StepStatus.values)}", dicom_status=0xC000
            )

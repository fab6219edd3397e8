"""Modality Performed Procedure Step: the one write path for MPPS records (PS3.4 F.7).

N-CREATE (:func:`performed_step_create`) records a step IN PROGRESS and moves
the worklist steps it names in its Scheduled Step Attributes Sequence to IN
PROGRESS; N-SET (:func:`performed_step_update`) merges the modification list,
records the Performed Series Sequence and, on COMPLETED or DISCONTINUED, moves
those worklist steps to the same final state.  A final MPPS can no longer be
updated.  Statuses travel on the raised :mod:`worklist.exceptions`.
"""

from __future__ import annotations

import datetime
import logging

from django.db import IntegrityError, transaction
from django.db.models import Q
from pydicom.dataset import Dataset
from pydicom.datadict import tag_for_keyword
from pydicom.multival import MultiValue

from pacs.charsets import TextDecoder
from pacs.storage import uid_is_valid
from worklist.choices import FINAL_STATUSES, SCHEDULABLE_STATUSES, PerformedStepStatus, StepStatus
from worklist.exceptions import (
    PerformedStepDuplicate,
    PerformedStepError,
    PerformedStepFinal,
    PerformedStepInvalidValue,
    PerformedStepMissingAttribute,
    PerformedStepUnknown,
)
from worklist.models import PerformedProcedureStep, PerformedSeries, ScheduledProcedureStep
from worklist.services.items import steps_status_set

logger = logging.getLogger(__name__)

_TEXT_VRS = {"LO", "SH", "LT", "ST", "UT", "UC", "PN"}
_STATUS_TAG = 0x00400252
_SERIES_SEQUENCE_TAG = 0x00400340
# Record field <- (keyword, VR) of the MPPS attribute (PS3.3 C.4.13-C.4.14).
_RECORD_FIELDS = {
    "performed_procedure_step_id": ("PerformedProcedureStepID", "SH"),
    "performed_procedure_step_description": ("PerformedProcedureStepDescription", "LO"),
    "performed_station_ae_title": ("PerformedStationAETitle", "AE"),
    "performed_station_name": ("PerformedStationName", "SH"),
    "performed_location": ("PerformedLocation", "SH"),
    "performed_procedure_step_start_date": ("PerformedProcedureStepStartDate", "DA"),
    "performed_procedure_step_start_time": ("PerformedProcedureStepStartTime", "TM"),
    "performed_procedure_step_end_date": ("PerformedProcedureStepEndDate", "DA"),
    "performed_procedure_step_end_time": ("PerformedProcedureStepEndTime", "TM"),
    "modality": ("Modality", "CS"),
    "patient_id": ("PatientID", "LO"),
    "patient_name": ("PatientName", "PN"),
}


class PerformedStepInvalidInstance(PerformedStepError):
    """An Affected SOP Instance UID that is not a UID (0x0117 invalid object instance)."""

    dicom_status = 0x0117
    http_status = 400


def _decoded(ds: Dataset, decoder: TextDecoder) -> Dataset:
    """A copy of *ds* with text decoded to Unicode (override/mislabel aware), recursively."""
    out = Dataset()
    for elem in ds:
        tag = int(elem.tag)
        if tag == 0x00080005:
            continue
        vr = elem.VR
        if vr in _TEXT_VRS:
            value = decoder.person_name(ds, tag).full if vr == "PN" else decoder.text(ds, tag)
            out.add_new(tag, vr, value or None)
        elif vr == "SQ":
            out.add_new(tag, vr, [_decoded(item, decoder) for item in ds[tag].value])
        else:
            out.add_new(tag, vr, ds[tag].value)
    return out


def _json(ds: Dataset) -> dict:
    try:
        return ds.to_json_dict()
    except Exception as exc:  # pydicom raises TypeError/ValueError for odd values
        raise PerformedStepInvalidValue(f"attribute list cannot be recorded: {exc}") from None


def _string(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    if value is None:
        return ""
    if isinstance(value, (list, MultiValue)):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _date(ds: Dataset, keyword: str) -> datetime.date | None:
    text = _string(ds, keyword)
    if not text:
        return None
    try:
        return datetime.datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        raise PerformedStepInvalidValue(f"{keyword} {text!r} is not a date (YYYYMMDD)",
                                        attribute_tags=[_tag(keyword)]) from None


def _time(ds: Dataset, keyword: str) -> datetime.time | None:
    text = _string(ds, keyword).replace(":", "")
    if not text:
        return None
    whole, _, fraction = text.partition(".")
    try:
        if len(whole) not in (2, 4, 6) or not whole.isdigit() or (fraction and not fraction.isdigit()):
            raise ValueError
        parts = [int(whole[i:i + 2]) for i in range(0, len(whole), 2)] + [0, 0]
        return datetime.time(parts[0], parts[1], min(parts[2], 59), int(fraction[:6].ljust(6, "0") or 0))
    except ValueError:
        raise PerformedStepInvalidValue(f"{keyword} {text!r} is not a time (HHMMSS)",
                                        attribute_tags=[_tag(keyword)]) from None


def _tag(keyword: str) -> int:
    return int(tag_for_keyword(keyword) or 0)


def _limited(value: str, vr: str) -> str:
    limit = {"SH": 16, "AE": 16, "CS": 16, "LO": 64, "PN": 324}.get(vr, 64)
    return value[:limit]


def _record_apply(record: PerformedProcedureStep, merged: Dataset) -> None:
    for field_name, (keyword, vr) in _RECORD_FIELDS.items():
        if vr == "DA":
            setattr(record, field_name, _date(merged, keyword))
        elif vr == "TM":
            setattr(record, field_name, _time(merged, keyword))
        else:
            setattr(record, field_name, _limited(_string(merged, keyword), vr))
    first = (merged.get("ScheduledStepAttributesSequence") or [Dataset()])[0]
    record.study_instance_uid = _limited(_string(first, "StudyInstanceUID"), "UI")
    record.accession_number = _limited(_string(first, "AccessionNumber"), "SH")
    reason = (merged.get("PerformedProcedureStepDiscontinuationReasonCodeSequence") or [Dataset()])[0]
    record.discontinuation_reason = _limited(_string(reason, "CodeMeaning"), "LO")


def _status(ds: Dataset) -> str:
    return _string(ds, "PerformedProcedureStepStatus").upper()


def _scheduled_steps(merged: Dataset) -> list[int]:
    """Worklist steps named by the Scheduled Step Attributes Sequence (0040,0270)."""
    q = Q()
    for item in merged.get("ScheduledStepAttributesSequence") or []:
        study_uid = _string(item, "StudyInstanceUID")
        accession = _string(item, "AccessionNumber")
        step_id = _string(item, "ScheduledProcedureStepID")
        if not study_uid and not accession:
            continue  # unscheduled case (PS3.4 F.7.2.1.1 Note): nothing to link
        item_q = Q(item__study_instance_uid=study_uid) if study_uid else Q(item__accession_number=accession)
        if step_id:
            item_q &= Q(scheduled_procedure_step_id=step_id)
        q |= item_q
    if not q:
        return []
    return list(ScheduledProcedureStep.objects.filter(q).values_list("pk", flat=True))


def _series_replace(record: PerformedProcedureStep, merged: Dataset) -> int:
    items = merged.get("PerformedSeriesSequence") or []
    rows = {}
    for item in items:
        uid = _string(item, "SeriesInstanceUID")
        if not uid_is_valid(uid):
            raise PerformedStepInvalidValue(
                f"PerformedSeriesSequence: SeriesInstanceUID {uid[:70]!r} is not a valid UID",
                attribute_tags=[_SERIES_SEQUENCE_TAG],
            )
        rows[uid] = PerformedSeries(
            performed_step=record,
            series_instance_uid=uid,
            series_description=_limited(_string(item, "SeriesDescription"), "LO"),
            performing_physician_name=_limited(_string(item, "PerformingPhysicianName"), "PN"),
            retrieve_ae_title=_limited(_string(item, "RetrieveAETitle"), "AE"),
            number_of_referenced_instances=len(item.get("ReferencedImageSequence") or [])
            + len(item.get("ReferencedNonImageCompositeSOPInstanceSequence") or []),
        )
    record.performed_series.all().delete()
    PerformedSeries.objects.bulk_create(rows.values())
    return len(rows)


def _charset_of(ds: Dataset, override: str, stored: dict) -> str:
    if override:
        return override
    if "SpecificCharacterSet" in ds:
        return "\\".join(ds.SpecificCharacterSet) if isinstance(ds.SpecificCharacterSet, MultiValue) \
            else str(ds.SpecificCharacterSet)
    return stored.get("_charset", "")


def performed_step_create(
    *, sop_instance_uid: str, ds: Dataset, calling_ae_title: str = "", charset_override: str = ""
) -> PerformedProcedureStep:
    """Record an MPPS N-CREATE (PS3.4 F.7.2.1).

    Parameters
    ----------
    sop_instance_uid
        The Affected SOP Instance UID of the request.
    ds
        The N-CREATE attribute list.
    calling_ae_title
        The modality's AE title (kept on the record).
    charset_override
        The calling AE's configured Specific Character Set override, if any.

    Returns
    -------
    PerformedProcedureStep
        With its worklist steps moved from SCHEDULED/ARRIVED to IN PROGRESS.

    Raises
    ------
    PerformedStepInvalidInstance
        0x0117: the SOP Instance UID is not a UID.
    PerformedStepMissingAttribute
        0x0120: no Performed Procedure Step Status.
    PerformedStepInvalidValue
        0x0106: status other than IN PROGRESS, malformed date/time/UID.
    PerformedStepDuplicate
        0x0111: the SOP instance exists already.
    """
    if not uid_is_valid(sop_instance_uid):
        raise PerformedStepInvalidInstance(f"Affected SOP Instance UID {str(sop_instance_uid)[:70]!r} is not a UID")
    status = _status(ds)
    if not status:
        raise PerformedStepMissingAttribute("PerformedProcedureStepStatus (0040,0252) is required",
                                            attribute_tags=[_STATUS_TAG])
    if status != PerformedStepStatus.IN_PROGRESS:
        raise PerformedStepInvalidValue(
            f"N-CREATE must create the step IN PROGRESS, not {status!r} (PS3.4 F.7.2.1.1)",
            attribute_tags=[_STATUS_TAG],
        )
    charset = _charset_of(ds, charset_override, {})
    decoded = _decoded(ds, TextDecoder.for_dataset(ds, charset_override))
    attributes = _json(decoded)
    attributes["_charset"] = charset
    record = PerformedProcedureStep(
        sop_instance_uid=sop_instance_uid,
        performed_procedure_step_status=status,
        calling_ae_title=calling_ae_title[:16],
        attributes=attributes,
    )
    _record_apply(record, decoded)
    try:
        with transaction.atomic():
            record.save()
            _series_replace(record, decoded)
            step_ids = _scheduled_steps(decoded)
            record.scheduled_steps.set(step_ids)
            moved = steps_status_set(step_ids=step_ids, status=StepStatus.IN_PROGRESS,
                                     allowed_from=SCHEDULABLE_STATUSES)
    except IntegrityError:
        if PerformedProcedureStep.objects.filter(sop_instance_uid=sop_instance_uid).exists():
            raise PerformedStepDuplicate(f"MPPS {sop_instance_uid} already exists") from None
        raise
    logger.info("mpps created sop_instance_uid=%s calling_aet=%s linked_steps=%d moved=%d",
                sop_instance_uid, calling_ae_title, len(step_ids), moved)
    return record


def performed_step_update(
    *, sop_instance_uid: str, ds: Dataset, calling_ae_title: str = "", charset_override: str = ""
) -> PerformedProcedureStep:
    """Apply an MPPS N-SET modification list (PS3.4 F.7.2.2).

    Returns
    -------
    PerformedProcedureStep
        Updated; on COMPLETED/DISCONTINUED its worklist steps moved to the same state.

    Raises
    ------
    PerformedStepUnknown
        0x0112: no such MPPS instance.
    PerformedStepFinal
        0x0110 (Error ID 0xA710): the step is COMPLETED or DISCONTINUED and
        "may no longer be updated".
    PerformedStepInvalidValue
        0x0106: an unknown status value, malformed date/time/UID.
    """
    with transaction.atomic():
        record = PerformedProcedureStep.objects.select_for_update().filter(sop_instance_uid=sop_instance_uid).first()
        if record is None:
            raise PerformedStepUnknown(f"no MPPS instance {str(sop_instance_uid)[:70]}")
        if record.performed_procedure_step_status in FINAL_STATUSES:
            raise PerformedStepFinal(
                f"Performed Procedure Step Object may no longer be updated "
                f"(it is {record.performed_procedure_step_status})"
            )
        status = _status(ds) or record.performed_procedure_step_status
        if status not in PerformedStepStatus.values:
            raise PerformedStepInvalidValue(
                f"PerformedProcedureStepStatus {status!r} is not IN PROGRESS, COMPLETED or DISCONTINUED",
                attribute_tags=[_STATUS_TAG],
            )
        charset = _charset_of(ds, charset_override, record.attributes)
        decoder = TextDecoder.for_dataset(ds, charset)
        changes = _json(_decoded(ds, decoder))
        attributes = {**record.attributes, **changes, "_charset": charset}
        merged = Dataset.from_json({k: v for k, v in attributes.items() if not k.startswith("_")})
        record.attributes = attributes
        record.performed_procedure_step_status = status
        _record_apply(record, merged)
        record.save()
        if _SERIES_SEQUENCE_TAG in ds:
            _series_replace(record, merged)
        moved = 0
        if status in FINAL_STATUSES:
            step_ids = list(record.scheduled_steps.values_list("pk", flat=True))
            moved = steps_status_set(step_ids=step_ids, status=StepStatus(status),
                                     allowed_from=[*SCHEDULABLE_STATUSES, StepStatus.IN_PROGRESS])
    logger.info("mpps updated sop_instance_uid=%s status=%s calling_aet=%s moved=%d",
                sop_instance_uid, status, calling_ae_title, moved)
    return record

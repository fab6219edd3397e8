"""Shared state and helpers of the Print SCP services (PS3.4 Annex H).

:class:`PrintContext` is the per-association state (PS3.4 H.4.1 allows one
film session per association); :func:`records_failure` marks the session's
print job FAILURE with the reason of any ``PrintError`` before it reaches the
handler.  SOP Class UIDs of the print management service class live here.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from pydicom.dataset import Dataset

from pacs.storage import uid_is_valid
from printing.exceptions import InvalidAttributeValue, NoSuchObjectInstance, PrintError
from printing.models import FilmBox, PrintJob
from printing.services.print_jobs import print_job_fail

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable)

# SOP classes (PS3.4 H.3, H.5)
BASIC_FILM_SESSION = "1.2.840.10008.5.1.1.1"
BASIC_FILM_BOX = "1.2.840.10008.5.1.1.2"
BASIC_GRAYSCALE_IMAGE_BOX = "1.2.840.10008.5.1.1.4"
BASIC_COLOR_IMAGE_BOX = "1.2.840.10008.5.1.1.4.1"
PRINT_JOB = "1.2.840.10008.5.1.1.14"
BASIC_ANNOTATION_BOX = "1.2.840.10008.5.1.1.15"
PRINTER = "1.2.840.10008.5.1.1.16"
PRINTER_INSTANCE = "1.2.840.10008.5.1.1.17"
PRESENTATION_LUT = "1.2.840.10008.5.1.1.23"
GRAYSCALE_META = "1.2.840.10008.5.1.1.9"
COLOR_META = "1.2.840.10008.5.1.1.18"
IMAGE_BOX_CLASS = {GRAYSCALE_META: BASIC_GRAYSCALE_IMAGE_BOX, COLOR_META: BASIC_COLOR_IMAGE_BOX}
IMAGE_SEQUENCE = {
    BASIC_GRAYSCALE_IMAGE_BOX: "BasicGrayscaleImageSequence",
    BASIC_COLOR_IMAGE_BOX: "BasicColorImageSequence",
}

REFERENCE_SEQUENCES = {
    "ReferencedFilmSessionSequence",
    "ReferencedImageBoxSequence",
    "ReferencedBasicAnnotationBoxSequence",
}


@dataclass
class PrintContext:
    """Per-association state of the Print SCP."""

    calling_aet: str
    called_aet: str = ""
    peer_address: str = ""
    job_id: int | None = None
    film_session_uid: str = ""
    meta_sop_class_uid: str = ""
    # Presentation LUT SOP instances of this association: uid -> DICOM JSON (PS3.4 H.4.9).
    presentation_luts: dict[str, dict] = field(default_factory=dict)


def records_failure(func: F) -> F:
    """Mark the session's print job FAILURE with the reason of a PrintError, then re-raise."""

    @functools.wraps(func)
    def wrapper(*args, context: PrintContext, **kwargs):
        try:
            return func(*args, context=context, **kwargs)
        except PrintError as exc:
            logger.warning(
                "print request failed operation=%s calling_aet=%s status=0x%04X reason=%s",
                func.__name__,
                context.calling_aet,
                exc.dicom_status,
                exc.message,
            )
            if context.job_id is not None:
                print_job_fail(job_id=context.job_id, reason=exc.message)
            raise

    return wrapper  # type: ignore[return-value]


def uid_checked(value: object, what: str) -> str:
    text = str(value or "").strip()
    if not uid_is_valid(text):
        raise InvalidAttributeValue(f"{what} {text!r} is not a valid UID")
    return text


def attribute_text(ds: Dataset, keyword: str, default: str = "") -> str:
    value = ds.get(keyword)
    return default if value in (None, "") else str(value).strip()


def json_without_references(ds: Dataset, exclude: set[str] = frozenset()) -> dict:
    """DICOM JSON of *ds* without the reference sequences and *exclude* keywords."""
    out = Dataset()
    for elem in ds:
        if elem.keyword not in REFERENCE_SEQUENCES and elem.keyword not in exclude:
            out.add(elem)
    return out.to_json_dict()


def dataset_from_json(data: dict) -> Dataset:
    return Dataset.from_json(data) if data else Dataset()


def session_check(context: PrintContext, sop_instance_uid: str) -> PrintJob:
    if not context.film_session_uid or sop_instance_uid != context.film_session_uid or context.job_id is None:
        raise NoSuchObjectInstance(f"No such Film Session on this association: {sop_instance_uid}")
    job = PrintJob.objects.filter(pk=context.job_id).first()
    if job is None:  # the print job was deleted (API, admin) while the association was open
        raise NoSuchObjectInstance(f"Film Session's print job was deleted: {sop_instance_uid}")
    return job


def film_box_get(context: PrintContext, sop_instance_uid: str) -> FilmBox:
    box = None
    if context.job_id is not None:
        box = FilmBox.objects.filter(print_job_id=context.job_id, sop_instance_uid=sop_instance_uid).first()
    if box is None:
        raise NoSuchObjectInstance(f"No such Film Box in this film session: {sop_instance_uid}")
    return box


def lut_reference(context: PrintContext, ds: Dataset) -> str:
    """The Presentation LUT a Referenced Presentation LUT Sequence names ('' when none)."""
    sequence = ds.get("ReferencedPresentationLUTSequence")
    if not sequence:
        return ""
    uid = str(sequence[0].get("ReferencedSOPInstanceUID", "")).strip()
    if uid not in context.presentation_luts:
        raise InvalidAttributeValue(f"Referenced Presentation LUT not created on this association: {uid}")
    return uid

"""Domain errors of the worklist app, each carrying its DICOM status and HTTP code."""

from __future__ import annotations

from pacs.exceptions import PacsError


class WorklistError(PacsError):
    """Base class of worklist and MPPS errors."""


class ItemInvalid(WorklistError):
    """A worklist item that cannot be saved; ``errors`` maps keywords to messages."""

    http_status = 400

    def __init__(self, errors: dict) -> None:
        super().__init__("; ".join(f"{key}: {value}" for key, value in errors.items()))
        self.errors = errors


class PerformedStepError(WorklistError):
    """An MPPS N-CREATE/N-SET that is refused (PS3.4 F.7.2.1.2 / F.7.2.2.2).

    ``error_id`` is the Error ID (0000,0902) sent with the status when set;
    ``attribute_tags`` go to the Attribute Identifier List (0000,1005).
    """

    error_id: int | None = None

    def __init__(self, message: str, *, attribute_tags: list[int] | None = None) -> None:
        super().__init__(message)
        self.attribute_tags = attribute_tags or []


class PerformedStepDuplicate(PerformedStepError):
    """N-CREATE for an SOP Instance UID that already exists (0x0111)."""

    dicom_status = 0x0111
    http_status = 409


class PerformedStepUnknown(PerformedStepError):
    """N-SET for an SOP Instance UID this SCP never created (0x0112 no such object instance)."""

    dicom_status = 0x0112
    http_status = 404


class PerformedStepFinal(PerformedStepError):
    """N-SET of a COMPLETED/DISCONTINUED step: 0x0110 with Error ID 0xA710 (PS3.4 F.7.2.2.2)."""

    dicom_status = 0x0110
    http_status = 409
    error_id = 0xA710


class PerformedStepInvalidValue(PerformedStepError):
    """An attribute value that breaks the MPPS state machine or VR (0x0106 invalid attribute value)."""

    dicom_status = 0x0106
    http_status = 400


class PerformedStepMissingAttribute(PerformedStepError):
    """A Type 1 attribute missing from N-CREATE (0x0120 missing attribute)."""

    dicom_status = 0x0120
    http_status = 400

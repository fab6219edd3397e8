"""Domain errors of the archive, each carrying the DICOM status it maps to.

The C-STORE handler answers ``exc.dicom_status``; STOW-RS puts the same value
in FailureReason (PS3.18 10.5.3).  One mapping, two protocols.
"""

from __future__ import annotations


class PacsError(Exception):
    """Base class; ``dicom_status`` is a PS3.7 Annex C status code."""

    dicom_status: int = 0xC000
    http_status: int = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class OutOfResources(PacsError):
    """Refused: out of resources (0xA700), e.g. the archive disk is below its floor."""

    dicom_status = 0xA700
    http_status = 507


class DatasetMismatch(PacsError):
    """Error: data set does not match SOP class (0xA900), e.g. a required attribute is missing."""

    dicom_status = 0xA900
    http_status = 400


class InvalidUID(DatasetMismatch):
    """A UID that is empty, too long or not digits and dots: it must never become a path."""


class CannotUnderstand(PacsError):
    """Error: cannot understand (0xC000): corrupt, truncated or unparsable data."""

    dicom_status = 0xC000
    http_status = 400


class DuplicateRejected(PacsError):
    """Duplicate SOP Instance (0x0111) under the ``reject`` duplicate policy."""

    dicom_status = 0x0111
    http_status = 409


class ProcessingFailure(PacsError):
    """Processing failure (0x0110): the index or the file system failed unexpectedly."""

    dicom_status = 0x0110
    http_status = 500

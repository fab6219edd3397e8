"""Errors of the Print SCP, each carrying the DIMSE status it answers (PS3.4 Annex H, PS3.7 C)."""

from __future__ import annotations

from pacs.exceptions import PacsError


class PrintError(PacsError):
    """Base class; ``dicom_status`` is answered by the N-* handler with ``message`` as Error Comment."""

    dicom_status = 0x0110  # Processing failure
    http_status = 400


class NoSuchObjectInstance(PrintError):
    """0x0112: the SOP instance (film session, film box, image box, print job) does not exist."""

    dicom_status = 0x0112
    http_status = 404


class InvalidAttributeValue(PrintError):
    """0x0106: an attribute has a value the SCP does not support (e.g. a bad Image Display Format)."""

    dicom_status = 0x0106


class NoSuchAttribute(PrintError):
    """0x0105: an attribute that may not be set (e.g. N-SET of Image Display Format)."""

    dicom_status = 0x0105


class MissingAttribute(PrintError):
    """0x0120: a required attribute is absent (e.g. the image sequence of an image box N-SET)."""

    dicom_status = 0x0120


class DuplicateSOPInstance(PrintError):
    """0x0111: the SCU chose a SOP Instance UID that already exists."""

    dicom_status = 0x0111


class ClassInstanceConflict(PrintError):
    """0x0119: the SOP instance is not of the SOP class named in the request."""

    dicom_status = 0x0119


class NoFilmBoxes(PrintError):
    """0xC600: film session N-ACTION with no film box in the hierarchy (PS3.4 H.4.1.2.3)."""

    dicom_status = 0xC600


class PrintProcessingFailure(PrintError):
    """0x0110: the film could not be composed or archived."""

    dicom_status = 0x0110
    http_status = 500


class ForwardError(PrintError):
    """A print job could not be forwarded to a printer node."""

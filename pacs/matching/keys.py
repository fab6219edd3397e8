"""Query levels and their keys (PS3.4 C.6.1.1, C.6.2.1): what can be matched and returned where.

``LEVEL_KEYS[level][keyword]`` is a :class:`Key`: the ORM field path from the
level's model, the VR, and for person names the component-group columns.
:func:`key_lookup` sees a keyword from a level (keys of the levels above come
with their ORM prefix); :class:`MatchingError` is the one error of the
matching package.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Model
from pydicom.datadict import keyword_for_tag, tag_for_keyword

from pacs.exceptions import PacsError
from pacs.models import Instance, Patient, Series, Study

PATIENT, STUDY, SERIES, IMAGE = "PATIENT", "STUDY", "SERIES", "IMAGE"
LEVELS = (PATIENT, STUDY, SERIES, IMAGE)

# Keys that steer the query rather than match anything (PS3.4 C.4.1.1.3, C.6.1.1.x).
CONTROL_KEYS = frozenset(
    {
        "QueryRetrieveLevel",
        "SpecificCharacterSet",
        "RetrieveAETitle",
        "InstanceAvailability",
        "TimezoneOffsetFromUTC",
        "StorageMediaFileSetID",
        "StorageMediaFileSetUID",
        "QueryRetrieveView",
    }
)

# Unique key of each level (PS3.4 C.6.1.1 / C.6.2.1).
UNIQUE_KEYS = {
    PATIENT: "PatientID",
    STUDY: "StudyInstanceUID",
    SERIES: "SeriesInstanceUID",
    IMAGE: "SOPInstanceUID",
}


class MatchingError(PacsError):
    """A query the matcher cannot run: a key not allowed at the level, a malformed value.

    ``dicom_status`` is 0xA900 (identifier does not match SOP class) for key
    errors and 0xC000 (cannot understand / unable to process) for malformed
    values; ``http_status`` is 400 for both.
    """

    http_status = 400

    def __init__(self, message: str, *, dicom_status: int = 0xA900) -> None:
        super().__init__(message)
        self.dicom_status = dicom_status


@dataclass(frozen=True)
class Key:
    """One matchable/returnable attribute as seen from a query level.

    ``field`` is the ORM path from the queried model (``None``: computed, return
    only); ``columns`` holds the PN component-group columns matched together.
    ``level`` is the level the attribute belongs to.
    """

    keyword: str
    vr: str
    field: str | None
    level: str
    columns: tuple[str, ...] = ()

    def prefixed(self, prefix: str) -> Key:
        if not prefix:
            return self
        return Key(
            keyword=self.keyword,
            vr=self.vr,
            field=prefix + self.field if self.field else None,
            level=self.level,
            columns=tuple(prefix + c for c in self.columns),
        )


def _keys(level: str, rows: Iterable[tuple]) -> dict[str, Key]:
    out = {}
    for row in rows:
        keyword, vr, field, *columns = row
        out[keyword] = Key(keyword=keyword, vr=vr, field=field, level=level, columns=tuple(columns))
    return out


LEVEL_KEYS: dict[str, dict[str, Key]] = {
    PATIENT: _keys(
        PATIENT,
        [
            ("PatientName", "PN", "patient_name", "patient_name", "patient_name_alphabetic",
             "patient_name_ideographic"),
            ("PatientID", "LO", "patient_id"),
            ("IssuerOfPatientID", "LO", "issuer_of_patient_id"),
            ("PatientBirthDate", "DA", "patient_birth_date"),
            ("PatientSex", "CS", "patient_sex"),
            ("NumberOfPatientRelatedStudies", "IS", "number_of_patient_related_studies"),
            ("NumberOfPatientRelatedSeries", "IS", "number_of_patient_related_series"),
            ("NumberOfPatientRelatedInstances", "IS", "number_of_patient_related_instances"),
        ],
    ),
    STUDY: _keys(
        STUDY,
        [
            ("StudyInstanceUID", "UI", "study_instance_uid"),
            ("StudyDate", "DA", "study_date"),
            ("StudyTime", "TM", "study_time"),
            ("StudyDescription", "LO", "study_description"),
            ("AccessionNumber", "SH", "accession_number"),
            ("StudyID", "SH", "study_id"),
            ("ReferringPhysicianName", "PN", "referring_physician_name", "referring_physician_name"),
            ("InstitutionName", "LO", "institution_name"),
            ("ModalitiesInStudy", "CS", "modalities_in_study"),
            ("NumberOfStudyRelatedSeries", "IS", "number_of_study_related_series"),
            ("NumberOfStudyRelatedInstances", "IS", "number_of_study_related_instances"),
            ("SOPClassesInStudy", "UI", None),
        ],
    ),
    SERIES: _keys(
        SERIES,
        [
            ("SeriesInstanceUID", "UI", "series_instance_uid"),
            ("Modality", "CS", "modality"),
            ("SeriesNumber", "IS", "series_number"),
            ("SeriesDescription", "LO", "series_description"),
            ("SeriesDate", "DA", "series_date"),
            ("SeriesTime", "TM", "series_time"),
            ("BodyPartExamined", "CS", "body_part_examined"),
            ("ProtocolName", "LO", "protocol_name"),
            ("StationName", "SH", "station_name"),
            ("Manufacturer", "LO", "manufacturer"),
            ("PerformedProcedureStepStartDate", "DA", "performed_procedure_step_start_date"),
            ("NumberOfSeriesRelatedInstances", "IS", "number_of_series_related_instances"),
        ],
    ),
    IMAGE: _keys(
        IMAGE,
        [
            ("SOPInstanceUID", "UI", "sop_instance_uid"),
            ("SOPClassUID", "UI", "sop_class_uid"),
            ("InstanceNumber", "IS", "instance_number"),
            ("Rows", "US", "rows"),
            ("Columns", "US", "columns"),
            ("NumberOfFrames", "IS", "number_of_frames"),
            ("BitsAllocated", "US", "bits_allocated"),
            ("PhotometricInterpretation", "CS", "photometric_interpretation"),
            ("AvailableTransferSyntaxUID", "UI", "transfer_syntax_uid"),
        ],
    ),
}

# ORM prefix to reach an upper level's model from a lower level's model.
PREFIX = {
    (STUDY, PATIENT): "patient__",
    (SERIES, PATIENT): "study__patient__",
    (SERIES, STUDY): "study__",
    (IMAGE, PATIENT): "series__study__patient__",
    (IMAGE, STUDY): "series__study__",
    (IMAGE, SERIES): "series__",
}
MODELS: dict[str, type[Model]] = {PATIENT: Patient, STUDY: Study, SERIES: Series, IMAGE: Instance}
SELECT_RELATED = {PATIENT: (), STUDY: ("patient",), SERIES: ("study__patient",), IMAGE: ("series__study__patient",)}
KEY_LEVEL = {keyword: level for level, keys in LEVEL_KEYS.items() for keyword in keys}


def level_check(level: object) -> str:
    """Return the upper-cased level name or raise :class:`MatchingError`."""
    value = str(level or "").strip().upper()
    if not value:
        raise MatchingError("QueryRetrieveLevel (0008,0052) is missing")
    if value not in LEVELS:
        raise MatchingError(f"Unknown QueryRetrieveLevel {value!r}; use PATIENT, STUDY, SERIES or IMAGE")
    return value


def keyword_normalise(key: str) -> str:
    """A DICOM keyword for *key* given as keyword or 8-digit hex tag ('' when neither)."""
    key = key.strip()
    if re.fullmatch(r"[0-9A-Fa-f]{8}", key):
        return keyword_for_tag(int(key, 16)) or ""
    if tag_for_keyword(key) is not None:
        return key
    return ""


def key_lookup(level: str, keyword: str) -> Key | None:
    """The :class:`Key` of *keyword* at *level*, ``None`` if the index does not hold it.

    Raises
    ------
    MatchingError
        *keyword* belongs to a level below *level*, or is not a DICOM keyword/tag.
    """
    level = level_check(level)
    name = keyword_normalise(keyword)
    if not name:
        raise MatchingError(f"{keyword!r} is not a DICOM keyword or tag")
    owner = KEY_LEVEL.get(name)
    if owner is None:
        return None
    if LEVELS.index(owner) > LEVELS.index(level):
        raise MatchingError(f"{name} is a {owner} level key and is not allowed in a {level} level query")
    return LEVEL_KEYS[owner][name].prefixed(PREFIX.get((level, owner), ""))


def unsupported_keys(level: str, keywords: Iterable[str]) -> list[str]:
    """Keywords among *keywords* that the index cannot match at *level* (control keys excluded)."""
    out = []
    for keyword in keywords:
        name = keyword_normalise(keyword) or keyword
        if name in CONTROL_KEYS:
            continue
        key = key_lookup(level, name)
        if key is None or key.field is None:
            out.append(name)
    return out



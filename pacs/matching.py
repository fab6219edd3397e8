"""DICOM attribute matching and response identifiers (PS3.4 C.2.2.2, C.4.1.2, C.6).

The one implementation of query matching, shared by C-FIND (Patient Root and
Study Root), QIDO-RS and the web study list.  Callers speak DICOM keywords and
string values; this module turns them into Django ``Q`` objects over
:mod:`pacs.models` and turns matched rows back into pydicom identifiers.

API
---
``LEVELS``
    ``("PATIENT", "STUDY", "SERIES", "IMAGE")``, top to bottom.
``LEVEL_KEYS[level][keyword] -> Key``
    The attributes *native* to a level: ORM field path relative to that level's
    model (``Patient``, ``Study``, ``Series``, ``Instance``), VR, and for person
    names the component-group columns.  Computed attributes
    (NumberOfStudyRelatedInstances, ModalitiesInStudy, ...) are listed too.
``key_lookup(level, keyword) -> Key``
    The key for *keyword* as seen from *level*: native keys plus every key of
    the levels above, with its path prefixed (``patient__patient_name`` at the
    STUDY level).  Keywords may also be given as 8-digit hex tags
    (``"0020000D"``).  Raises :class:`MatchingError` for a key of a lower level
    (e.g. SOPInstanceUID at the STUDY level) or a string that is no DICOM
    keyword; returns ``None`` for a real DICOM keyword the index does not hold
    (the caller answers it empty and, when a value was given, warns: C-FIND
    0xFF01, QIDO-RS a Warning header).
``value_q(field, vr, value, *, fuzzy=False) -> Q | None``
    Matching of one value against one field (or, for PN, a tuple of columns
    ORed together):

    * empty, ``*`` or only wildcards: universal matching, returns ``None``;
    * UI: single UID or a UID list (backslash or comma separated), validated;
    * DA / TM / DT: single value or range ``a-b``, ``a-`` or ``-b``; a partial
      time (``10`` or ``1015``) covers its whole hour/minute;
    * IS / US / DS: exact number;
    * PN: matched against every component group (full value, alphabetic,
      ideographic); case-insensitive when ``settings.PACS_PN_CASE_INSENSITIVE``
      (default on) or *fuzzy*; *fuzzy* also matches any name component by prefix
      (QIDO-RS ``fuzzymatching=true``);
    * other text: case-sensitive single value or ``*``/``?`` wildcards; a
      backslash-separated list matches any of its values (ModalitiesInStudy
      ``CT\\MR``).

    Raises :class:`MatchingError` (0xC000, HTTP 400) for a malformed value.
``level_queryset(level, filters, *, fuzzy=False, base=None) -> QuerySet``
    Rows of *level* matching every ``{keyword: value}`` in *filters* (control
    keys such as QueryRetrieveLevel and SpecificCharacterSet are ignored),
    with ``select_related`` set so :func:`level_identifier` needs no query.
``unsupported_keys(level, keywords) -> list[str]``
    The keywords among *keywords* the index cannot match at *level*.
``level_identifier(obj, level, keywords, *, retrieve_aet="") -> Dataset``
    The response identifier of one matched row: exactly the requested
    *keywords* (absent values empty), the unique keys of the level and those
    above, QueryRetrieveLevel and SpecificCharacterSet ``ISO_IR 192`` (all text
    is decoded Unicode).  SOPClassesInStudy costs one query per study and is
    computed only when requested.

Example::

    qs = level_queryset("STUDY", {"PatientName": "WANG*", "StudyDate": "20240101-"})
    for study in qs.iterator():
        ds = level_identifier(study, "STUDY", ["PatientName", "StudyDate", "ModalitiesInStudy"])
"""

from __future__ import annotations

import datetime
import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Model, Q, QuerySet
from django.utils import timezone
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from pacs.exceptions import PacsError
from pacs.models import Instance, Patient, Series, Study
from pacs.storage import uid_is_valid

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

_WILDCARD_ONLY = re.compile(r"^[*?]*$")
_NUMBER_VRS = {"IS", "US", "UL", "SS", "SL", "DS", "FL", "FD"}
_UID_SPLIT = re.compile(r"[\\,]")


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
_PREFIX = {
    (STUDY, PATIENT): "patient__",
    (SERIES, PATIENT): "study__patient__",
    (SERIES, STUDY): "study__",
    (IMAGE, PATIENT): "series__study__patient__",
    (IMAGE, STUDY): "series__study__",
    (IMAGE, SERIES): "series__",
}
_MODELS: dict[str, type[Model]] = {PATIENT: Patient, STUDY: Study, SERIES: Series, IMAGE: Instance}
_SELECT_RELATED = {PATIENT: (), STUDY: ("patient",), SERIES: ("study__patient",), IMAGE: ("series__study__patient",)}
_KEY_LEVEL = {keyword: level for level, keys in LEVEL_KEYS.items() for keyword in keys}


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
    owner = _KEY_LEVEL.get(name)
    if owner is None:
        return None
    if LEVELS.index(owner) > LEVELS.index(level):
        raise MatchingError(f"{name} is a {owner} level key and is not allowed in a {level} level query")
    return LEVEL_KEYS[owner][name].prefixed(_PREFIX.get((level, owner), ""))


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


# --- Single-value matching ---------------------------------------------------------


def _is_universal(value: str) -> bool:
    return not value or bool(_WILDCARD_ONLY.match(value))


def _pn_case_insensitive() -> bool:
    return getattr(settings, "PACS_PN_CASE_INSENSITIVE", True)


def _wildcard_regex(value: str) -> str:
    parts = []
    for ch in value:
        if ch == "*":
            parts.append(".*")
        elif ch == "?":
            parts.append(".")
        else:
            parts.append(re.escape(ch))
    return "^" + "".join(parts) + "$"


def _text_q(field: str, value: str, *, insensitive: bool) -> Q:
    if "*" in value or "?" in value:
        cut = min(i for i in (value.find("*"), value.find("?")) if i >= 0)
        prefix = value[:cut]
        if insensitive and value == prefix + "*":
            return Q(**{f"{field}__istartswith": prefix})
        # Regex, not LIKE, decides: SQLite's LIKE ignores case, which would make the
        # case-sensitive matching of PS3.4 C.2.2.2.4 differ between databases.  A
        # LIKE prefix test first lets PostgreSQL use its pattern index and spares
        # SQLite a Python regex call per row (10,000 studies: ~60 ms -> ~5 ms).
        regex = Q(**{f"{field}__{'iregex' if insensitive else 'regex'}": _wildcard_regex(value)})
        if prefix:
            return Q(**{f"{field}__{'istartswith' if insensitive else 'startswith'}": prefix}) & regex
        return regex
    return Q(**{f"{field}__{'iexact' if insensitive else 'exact'}": value})


def _fuzzy_pn_q(field: str, value: str) -> Q:
    # Any name component (family, given, middle...) starting with the value.
    pattern = _wildcard_regex(value.rstrip("*") + "*")[1:]
    return Q(**{f"{field}__iregex": r"(^|[\^ =])" + pattern.rstrip("$")})


def _pn_q(columns: Sequence[str], value: str, *, fuzzy: bool) -> Q:
    insensitive = fuzzy or _pn_case_insensitive()
    groups = value.split("=")
    if len(groups) > 1 and len(columns) >= 3:
        # Group-by-group query ("WANG^XIAOMING=王^小明"): alphabetic and ideographic columns.
        q = Q()
        for column, group in zip(columns[1:3], groups[:2]):
            if not _is_universal(group):
                q &= _fuzzy_pn_q(column, group) if fuzzy else _text_q(column, group, insensitive=insensitive)
        return q
    q = Q()
    for column in columns:
        q |= _fuzzy_pn_q(column, value) if fuzzy else _text_q(column, value, insensitive=insensitive)
    return q


def _date(text: str, *, keyword: str) -> datetime.date:
    digits = text.replace(".", "").strip()
    if not (len(digits) == 8 and digits.isdigit()):
        raise MatchingError(f"{keyword}: {text!r} is not a date (YYYYMMDD)", dicom_status=0xC000)
    try:
        return datetime.date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError as exc:
        raise MatchingError(f"{keyword}: {text!r} is not a valid date ({exc})", dicom_status=0xC000) from None


def _time(text: str, *, keyword: str, upper: bool) -> datetime.time:
    """Parse a TM value; a partial value is widened to its start (or end when *upper*)."""
    raw = text.replace(":", "").strip()
    whole, _, fraction = raw.partition(".")
    if not whole.isdigit() or len(whole) not in (2, 4, 6) or (fraction and not fraction.isdigit()):
        raise MatchingError(f"{keyword}: {text!r} is not a time (HH[MM[SS[.FFFFFF]]])", dicom_status=0xC000)
    parts = [int(whole[i:i + 2]) for i in range(0, len(whole), 2)]
    defaults = [23, 59, 59] if upper else [0, 0, 0]
    hour, minute, second = (parts + defaults[len(parts):])[:3]
    if fraction:
        micro = int(fraction[:6].ljust(6, "0"))
    else:
        micro = 999999 if upper and len(whole) <= 6 else 0
    try:
        return datetime.time(hour, minute, min(second, 59), micro)
    except ValueError as exc:
        raise MatchingError(f"{keyword}: {text!r} is not a valid time ({exc})", dicom_status=0xC000) from None


def _datetime(text: str, *, keyword: str, upper: bool) -> datetime.datetime:
    raw = text.strip()
    match = re.fullmatch(r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,6}))?([+-]\d{4})?", raw)
    if not match:
        raise MatchingError(f"{keyword}: {text!r} is not a date-time (YYYYMMDDHHMMSS)", dicom_status=0xC000)
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    filled = [month, day, hour, minute, second]
    lows, highs = [1, 1, 0, 0, 0], [12, 0, 23, 59, 59]
    values = [int(v) if v is not None else (hi if upper else lo) for v, lo, hi in zip(filled, lows, highs)]
    try:
        if values[1] == 0:  # last day of the month
            next_month = datetime.date(int(year) + values[0] // 12, values[0] % 12 + 1, 1)
            values[1] = (next_month - datetime.timedelta(days=1)).day
        micro = int(fraction.ljust(6, "0")) if fraction else (999999 if upper else 0)
        tz = datetime.timezone.utc
        if offset:
            sign = 1 if offset[0] == "+" else -1
            tz = datetime.timezone(sign * datetime.timedelta(hours=int(offset[1:3]), minutes=int(offset[3:])))
        value = datetime.datetime(int(year), *values, micro)
    except ValueError as exc:
        raise MatchingError(f"{keyword}: {text!r} is not a valid date-time ({exc})", dicom_status=0xC000) from None
    if offset:
        return value.replace(tzinfo=tz)
    return timezone.make_aware(value) if settings.USE_TZ else value


_DT = r"\d{4,14}(?:\.\d{1,6})?(?:[+-]\d{4})?"


def _range_split(vr: str, value: str) -> tuple[str, str] | None:
    """``(start, end)`` of a range value, ``None`` for a single value."""
    if vr == "DT":
        # A DT may carry a negative UTC offset ("...-0500"), so split by pattern.
        if re.fullmatch(_DT, value):
            return None
        match = re.fullmatch(f"({_DT})?-({_DT})?", value)
        if not match:
            raise MatchingError(f"{value!r} is not a date-time or date-time range", dicom_status=0xC000)
        return match.group(1) or "", match.group(2) or ""
    if "-" not in value:
        return None
    start, _, end = value.partition("-")
    return start.strip(), end.strip()


def _range_q(field: str, vr: str, value: str, *, keyword: str) -> Q:
    bounds = _range_split(vr, value)
    if bounds is not None:
        start, end = bounds
        q = Q()
        if start:
            q &= Q(**{f"{field}__gte": _parse(vr, start, keyword=keyword, upper=False)})
        if end:
            q &= Q(**{f"{field}__lte": _parse(vr, end, keyword=keyword, upper=True)})
        return q
    low = _parse(vr, value, keyword=keyword, upper=False)
    high = _parse(vr, value, keyword=keyword, upper=True)
    if low == high:
        return Q(**{field: low})
    return Q(**{f"{field}__gte": low, f"{field}__lte": high})


def _parse(vr: str, text: str, *, keyword: str, upper: bool) -> datetime.date | datetime.time | datetime.datetime:
    if vr == "DA":
        return _date(text, keyword=keyword)
    if vr == "TM":
        return _time(text, keyword=keyword, upper=upper)
    return _datetime(text, keyword=keyword, upper=upper)


def value_q(
    field: str | Sequence[str], vr: str, value: object, *, fuzzy: bool = False, keyword: str = ""
) -> Q | None:
    """A ``Q`` matching *value* against *field* as PS3.4 C.2.2.2 says; ``None`` = universal.

    Parameters
    ----------
    field
        ORM path (``patient__patient_id``); for PN a sequence of columns ORed.
    vr
        The attribute's VR; selects date/time range, UID list, number or text matching.
    value
        The query value (``str``, or a list for multi-valued elements).
    fuzzy
        QIDO-RS fuzzy matching of person names.
    keyword
        Used in error messages.

    Raises
    ------
    MatchingError
        0xC000: malformed date/time/range, invalid UID, non-numeric number.
    """
    keyword = keyword or (field if isinstance(field, str) else field[0])
    if isinstance(value, (list, tuple)):
        values = [str(v) for v in value]
        text = "\\".join(values)
    else:
        text = "" if value is None else str(value)
    text = text.strip().strip("\x00").strip()
    if _is_universal(text) or (vr in ("DA", "TM", "DT") and text == "-"):
        return None
    if vr == "UI":
        uids = [u.strip().strip("\x00") for u in _UID_SPLIT.split(text) if u.strip()]
        bad = [u for u in uids if not uid_is_valid(u)]
        if bad:
            raise MatchingError(f"{keyword}: {bad[0][:70]!r} is not a valid UID", dicom_status=0xC000)
        target = field if isinstance(field, str) else field[0]
        return Q(**{target: uids[0]}) if len(uids) == 1 else Q(**{f"{target}__in": uids})
    values = [v.strip() for v in text.split("\\")]
    values = [v for v in values if v] or [""]
    if any(_is_universal(v) for v in values):
        return None
    q = Q()
    for single in values:
        q |= _single_q(field, vr, single, fuzzy=fuzzy, keyword=keyword)
    return q


def _single_q(field: str | Sequence[str], vr: str, value: str, *, fuzzy: bool, keyword: str) -> Q:
    if vr == "PN":
        columns = (field,) if isinstance(field, str) else tuple(field)
        return _pn_q(columns, value, fuzzy=fuzzy)
    target = field if isinstance(field, str) else field[0]
    if vr in ("DA", "TM", "DT"):
        return _range_q(target, vr, value, keyword=keyword)
    if vr in _NUMBER_VRS:
        try:
            number = float(value) if vr in ("DS", "FL", "FD") else int(value)
        except ValueError:
            raise MatchingError(f"{keyword}: {value!r} is not a number", dicom_status=0xC000) from None
        return Q(**{target: number})
    if keyword == "ModalitiesInStudy" or target.endswith("modalities_in_study"):
        # Stored backslash-joined ("CT\\SR"): match one modality as a whole token.
        return _token_q(target, value)
    return _text_q(target, value, insensitive=False)


def _token_q(field: str, value: str) -> Q:
    token = _wildcard_regex(value)[1:-1]
    return Q(**{f"{field}__regex": r"(^|\\)" + token + r"(\\|$)"})


# --- Level querysets ------------------------------------------------------------------


def level_queryset(
    level: str, filters: dict[str, object], *, fuzzy: bool = False, base: QuerySet | None = None
) -> QuerySet:
    """Rows of *level* matching all *filters* (``{keyword or hex tag: value}``).

    Keys the index does not hold are skipped (see :func:`unsupported_keys`);
    control keys (QueryRetrieveLevel, SpecificCharacterSet, ...) are ignored.

    Returns
    -------
    QuerySet
        Of Patient, Study, Series or Instance, with ``select_related`` up to
        the patient, in the model's default order.

    Raises
    ------
    MatchingError
        Unknown level, a key of a lower level, a malformed value.
    """
    level = level_check(level)
    qs = base if base is not None else _MODELS[level].objects.all()
    if _SELECT_RELATED[level]:
        qs = qs.select_related(*_SELECT_RELATED[level])
    q = Q()
    for keyword, value in filters.items():
        name = keyword_normalise(keyword) or keyword
        if name in CONTROL_KEYS:
            continue
        key = key_lookup(level, name)
        if key is None or key.field is None:
            continue
        target = key.columns if key.vr == "PN" and key.columns else key.field
        matched = value_q(target, key.vr, value, fuzzy=fuzzy, keyword=name)
        if matched is not None:
            q &= matched
    return qs.filter(q) if q else qs


# --- Response identifiers -------------------------------------------------------------


def _value_of(obj: Model, path: str) -> object:
    for part in path.split("__"):
        if obj is None:
            return None
        obj = getattr(obj, part)
    return obj


def _dicom_value(vr: str, value: object) -> object:
    if value is None or value == "":
        return None
    if isinstance(value, datetime.datetime):
        if timezone.is_aware(value):
            value = timezone.localtime(value)
        return value.strftime("%Y%m%d%H%M%S") + (f".{value.microsecond:06d}" if value.microsecond else "")
    if isinstance(value, datetime.date):
        return value.strftime("%Y%m%d")
    if isinstance(value, datetime.time):
        return value.strftime("%H%M%S") + (f".{value.microsecond:06d}" if value.microsecond else "")
    if vr == "CS" and isinstance(value, str) and "\\" in value:
        return value.split("\\")
    if vr in ("IS", "US") and not isinstance(value, str):
        return int(value)
    return value


def _computed(obj: Model, level: str, keyword: str) -> object:
    if keyword == "SOPClassesInStudy":
        study = obj if level == STUDY else _value_of(obj, _PREFIX[(level, STUDY)].rstrip("_"))
        values = (
            Instance.objects.filter(series__study=study).order_by().values_list("sop_class_uid", flat=True).distinct()
        )
        return sorted(values) or None
    return None


def level_identifier(
    obj: Model, level: str, keywords: Iterable[str], *, retrieve_aet: str = ""
) -> Dataset:
    """The C-FIND/QIDO-RS response identifier of one matched row.

    Parameters
    ----------
    obj
        A row from :func:`level_queryset` for the same *level*.
    level
        PATIENT, STUDY, SERIES or IMAGE.
    keywords
        Requested return keys (keywords or hex tags); unknown DICOM keywords
        come back empty, keys of lower levels are skipped.
    retrieve_aet
        Value of RetrieveAETitle when requested (the AE that serves C-MOVE/C-GET).

    Returns
    -------
    Dataset
        SpecificCharacterSet ``ISO_IR 192``, QueryRetrieveLevel, the unique keys
        of *level* and above, then every requested key.
    """
    level = level_check(level)
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.QueryRetrieveLevel = level
    for name, tag, vr, key in _identifier_plan(level, tuple(keywords)):
        if name == "RetrieveAETitle":
            ds.add_new(tag, vr, retrieve_aet or None)
        elif name == "InstanceAvailability":
            ds.add_new(tag, vr, "ONLINE")
        elif key is None:
            ds.add_new(tag, vr, DicomSequence() if vr == "SQ" else None)
        else:
            raw = _value_of(obj, key.field) if key.field else _computed(obj, level, name)
            ds.add_new(tag, vr, _dicom_value(key.vr, raw))
    return ds


@functools.lru_cache(maxsize=256)
def _identifier_plan(level: str, keywords: tuple[str, ...]) -> tuple[tuple[str, int, str, Key | None], ...]:
    """(keyword, tag, VR, key) per returned attribute: worked out once per query shape, not per row."""
    wanted: list[str] = [UNIQUE_KEYS[upper] for upper in LEVELS[: LEVELS.index(level) + 1]]
    for keyword in keywords:
        name = keyword_normalise(keyword)
        if name and name not in wanted and name not in ("SpecificCharacterSet", "QueryRetrieveLevel"):
            wanted.append(name)
    plan = []
    for name in wanted:
        try:
            key = None if name in ("RetrieveAETitle", "InstanceAvailability") else key_lookup(level, name)
        except MatchingError:
            continue  # a lower level's key: not returned
        tag = tag_for_keyword(name)
        plan.append((name, tag, dictionary_VR(tag).split(" or ")[0], key))
    return tuple(plan)

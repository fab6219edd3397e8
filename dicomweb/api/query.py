"""QIDO-RS (PS3.18 10.6): search for studies, series and instances.

Matching is :mod:`pacs.matching` (the one implementation shared with C-FIND):
keys as keyword or tag, ``*``/``?`` wildcards, date/time ranges open on either
side, UID lists (comma or backslash), ``fuzzymatching=true`` for person names.
The response is an ``application/dicom+json`` array of the default attributes
of PS3.18 Table 10.6.3-3..5 plus every ``includefield`` (and every key given
with an empty value, which PS3.18 8.3.4.3 makes the same thing).

Attributes the index does not hold - sequences such as ProcedureCodeSequence
(0008,1032), or PatientAge - are returned from the header of one stored
instance of each matched study or series (the first stored; the instance itself
at the instance level), read only when asked for.  Ask at each level for that
level's attributes (PS3.4 C.6.1.1.3-5): a study-level answer does not merge
the values of all its instances.  ``includefield`` of a path inside a sequence
(``00081032.00080100``) returns the whole sequence.

Matching on sequence items (``ProcedureCodeSequence.CodeValue=X``,
``00081032.00080100=X``, PS3.18 8.3.4.1) is not supported: the index holds no
sequence items.  A well-formed path is ignored with ``Warning: 299`` naming it,
as PS3.18 8.3 asks for unsupported query parameters (the same as for any other
attribute the index cannot match); a malformed path (not keywords/tags, or an
intermediate attribute that is no sequence) is a 400, and so is a value given
to a sequence attribute itself (``ProcedureCodeSequence=X``: a sequence only
matches through its items).

No match answers ``200`` with ``[]`` (PS3.18 10.6.3.2 allows 204; an empty
array is what OHIF and dicomweb-client handle without special cases).  More
results than ``limit`` (or the server cap ``MAX_RESULTS``) adds a ``Warning:
299`` header as 8.3.4.4 says.
"""

from __future__ import annotations

import datetime
import logging

from pydicom import dcmread
from pydicom.datadict import dictionary_VR, tag_for_keyword
from rest_framework.response import Response

from dicomweb import selectors
from dicomweb.api import schema
from dicomweb.api.base import (
    DicomWebView,
    bad_param,
    base_url,
    int_param,
    not_acceptable,
    uid_check,
)
from dicomweb.parsers import accept_parse
from pacs import matching, storage

logger = logging.getLogger("dicomweb")

MAX_RESULTS = 1000
CONTROL_PARAMS = {"limit", "offset", "fuzzymatching", "includefield", "_"}

# Default return attributes (PS3.18 Table 10.6.3-3, -4, -5).
STUDY_DEFAULTS = [
    "StudyDate", "StudyTime", "AccessionNumber", "InstanceAvailability", "ModalitiesInStudy",
    "ReferringPhysicianName", "PatientName", "PatientID", "PatientBirthDate", "PatientSex",
    "StudyInstanceUID", "StudyID", "StudyDescription", "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
]
SERIES_DEFAULTS = [
    "Modality", "SeriesInstanceUID", "SeriesNumber", "SeriesDescription", "PerformedProcedureStepStartDate",
    "NumberOfSeriesRelatedInstances", "BodyPartExamined", "SeriesDate", "SeriesTime",
]
INSTANCE_DEFAULTS = [
    "SOPClassUID", "SOPInstanceUID", "InstanceAvailability", "InstanceNumber", "Rows", "Columns",
    "BitsAllocated", "NumberOfFrames",
]
# Friendly aliases accepted at the study level.
STUDY_ALIASES = {"Modality": "ModalitiesInStudy", "00080060": "ModalitiesInStudy"}
_LEVEL_DEFAULTS = {
    matching.STUDY: STUDY_DEFAULTS,
    matching.SERIES: SERIES_DEFAULTS,
    matching.IMAGE: INSTANCE_DEFAULTS,
}
_ALL_FIELDS = {
    level: [kw for lvl in matching.LEVELS[: matching.LEVELS.index(level) + 1] for kw in matching.LEVEL_KEYS[lvl]]
    for level in (matching.STUDY, matching.SERIES, matching.IMAGE)
}


_CHARSET = {"vr": "CS", "Value": ["ISO_IR 192"]}


def _json_value(vr: str, value: object) -> list | None:
    """DICOM JSON ``Value`` of an index value (PS3.18 F.2): None when empty."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime.datetime):
        return [value.strftime("%Y%m%d%H%M%S")]
    if isinstance(value, datetime.date):
        return [value.strftime("%Y%m%d")]
    if isinstance(value, datetime.time):
        return [value.strftime("%H%M%S") + (f".{value.microsecond:06d}" if value.microsecond else "")]
    if vr == "PN":
        groups = str(value).split("=")
        item = {"Alphabetic": groups[0]} if groups[0] else {}
        if len(groups) > 1 and groups[1]:
            item["Ideographic"] = groups[1]
        if len(groups) > 2 and groups[2]:
            item["Phonetic"] = groups[2]
        return [item] if item else None
    if vr in ("IS", "US", "UL", "SS", "SL"):
        return [int(value)]
    if vr in ("DS", "FL", "FD"):
        return [float(value)]
    if isinstance(value, str) and "\\" in value:
        return value.split("\\")
    return [value]


def _plan(level: str, fields: list[str]) -> tuple[list[tuple], list[str], list[int]]:
    """Resolve the requested keywords once per request.

    Returns ``(columns, computed, from_header)``: ``(tag key, vr, field path)``
    read from the row, keywords that need :func:`pacs.matching.level_identifier`
    (computed values such as SOPClassesInStudy), and tags the index does not
    hold, read from a stored header.
    """
    wanted = [matching.UNIQUE_KEYS[upper] for upper in matching.LEVELS[1 if level != matching.PATIENT else 0:
                                                                       matching.LEVELS.index(level) + 1]]
    wanted = ["PatientID", *wanted] if "PatientID" not in wanted else wanted
    wanted += [name for name in fields if name not in wanted]
    columns, computed, from_header = [], [], []
    for name in wanted:
        tag = tag_for_keyword(name)
        if tag is None or name in ("SpecificCharacterSet", "QueryRetrieveLevel"):
            continue
        key_text = f"{tag:08X}"
        if name == "InstanceAvailability":
            columns.append((key_text, "CS", None, "ONLINE"))
            continue
        try:
            key = matching.key_lookup(level, name)
        except matching.MatchingError:
            continue
        if key is None:
            from_header.append(tag)
        elif key.field is None:
            computed.append(name)
        else:
            columns.append((key_text, key.vr, key.field.split("__"), None))
    return columns, computed, from_header


def _header_values(level: str, page: list, tags: list[int]) -> dict[int, dict]:
    """``{row id: {tag key: DICOM JSON}}`` of *tags* read from one stored header per row."""
    if level == matching.IMAGE:
        paths = {row.id: row.file_path for row in page}
    else:
        paths = selectors.representative_files(level, [row.id for row in page])
    out = {}
    for row_id, path in paths.items():
        try:
            ds = dcmread(storage.absolute_path(path), stop_before_pixels=True, specific_tags=tags)
        except (OSError, ValueError) as exc:
            logger.warning("qido-rs header unreadable path=%s error=%s", path, exc.__class__.__name__)
            continue
        values = {}
        for tag in tags:
            if tag in ds:
                try:
                    values[f"{tag:08X}"] = ds[tag].to_json_dict(None, 1 << 30)
                except (TypeError, ValueError):  # a corrupt value: answered empty, never a 500
                    continue
        out[row_id] = values
    return out


def _sequence_path(key: str) -> list[str]:
    """Keywords of an attribute path ``Seq.Attr`` / ``00081032.00080100`` (PS3.18 8.3.4.1); else 400."""
    names = [matching.keyword_normalise(part) for part in key.split(".")]
    if not all(names):
        raise bad_param(key, f"{key[:64]!r} is not a path of DICOM keywords or tags (e.g. 00081032.00080100)")
    for name in names[:-1]:
        if dictionary_VR(name) != "SQ":
            raise bad_param(key, f"{name} is not a sequence: only sequences can be followed by '.'")
    return names


def _row_json(row, level: str, columns: list[tuple], computed: list[str]) -> dict:
    item = {"00080005": _CHARSET}
    for key_text, vr, path, constant in columns:
        if path is None:
            value = constant
        else:
            value = row
            for part in path:
                value = getattr(value, part) if value is not None else None
        values = _json_value(vr, value)
        item[key_text] = {"vr": vr, "Value": values} if values else {"vr": vr}
    if computed:
        extra = matching.level_identifier(row, level, computed)
        for elem in extra:
            if elem.keyword in computed:
                item[f"{elem.tag:08X}"] = elem.to_json_dict(None, 1 << 30)
    return item


def _retrieve_url(root: str, level: str, row) -> str:
    if level == matching.STUDY:
        return f"{root}/dicomweb/studies/{row.study_instance_uid}"
    if level == matching.SERIES:
        return f"{root}/dicomweb/studies/{row.study.study_instance_uid}/series/{row.series_instance_uid}"
    return (
        f"{root}/dicomweb/studies/{row.series.study.study_instance_uid}/series/{row.series.series_instance_uid}"
        f"/instances/{row.sop_instance_uid}"
    )


class QueryView(DicomWebView):
    """Search Transaction (PS3.18 10.6) at every QIDO-RS resource."""

    level = matching.STUDY

    @schema.qido
    def get(self, request, **kwargs):
        for item in accept_parse(request.META.get("HTTP_ACCEPT", "")):
            if item.media_type in ("application/dicom+json", "application/json", "*/*", "application/*"):
                break
        else:
            if request.META.get("HTTP_ACCEPT"):
                raise not_acceptable("QIDO-RS answers application/dicom+json")
        level = self.level
        limit = int_param(request, "limit", default=None, minimum=0, maximum=1_000_000)
        offset = int_param(request, "offset", default=0, minimum=0)
        fuzzy_raw = request.query_params.get("fuzzymatching", "false").lower()
        if fuzzy_raw not in ("true", "false", ""):
            raise bad_param("fuzzymatching", "must be true or false")
        fuzzy = fuzzy_raw == "true"

        filters: dict[str, str] = {}
        unsupported: list[str] = []
        returned: list[str] = []  # keys given without a value: return keys (PS3.18 8.3.4.3)
        for key, values in request.query_params.lists():
            if key in CONTROL_PARAMS:
                continue
            value = "\\".join(v for v in values)
            if "." in key:
                path = _sequence_path(key)
                if value:
                    unsupported.append(".".join(path))
                else:
                    returned.append(path[0])
                continue
            name = STUDY_ALIASES.get(key, key) if level == matching.STUDY else key
            keyword = matching.keyword_normalise(name)
            if not keyword:
                raise bad_param(key, f"{key[:64]!r} is not a DICOM keyword, tag or QIDO-RS parameter")
            try:
                found = matching.key_lookup(level, keyword)
            except matching.MatchingError as exc:
                raise bad_param(key, exc.message) from None
            if value and dictionary_VR(keyword) == "SQ":
                raise bad_param(key, f"{keyword} is a sequence: match its items with {keyword}.<attribute>=<value>")
            if found is None or found.field is None:
                if value:
                    unsupported.append(keyword)
                else:
                    returned.append(keyword)
                continue
            filters[keyword] = value
        # Path UIDs narrow the search (studies/{study}/series, .../series/{series}/instances).
        if "study" in kwargs:
            filters["StudyInstanceUID"] = uid_check(kwargs["study"], "StudyInstanceUID")
        if "series" in kwargs:
            filters["SeriesInstanceUID"] = uid_check(kwargs["series"], "SeriesInstanceUID")

        fields = list(_LEVEL_DEFAULTS[level])
        if level != matching.STUDY and "study" not in kwargs:
            fields += [f for f in STUDY_DEFAULTS if f not in fields]
        if level == matching.IMAGE and "series" not in kwargs:
            fields += [f for f in SERIES_DEFAULTS if f not in fields]
        for raw in request.query_params.getlist("includefield"):
            for name in raw.split(","):
                name = name.strip()
                if not name:
                    continue
                if name.lower() == "all":
                    fields += [f for f in _ALL_FIELDS[level] if f not in fields]
                    continue
                if "." in name:
                    keyword = _sequence_path(name)[0]  # the whole top-level sequence
                else:
                    keyword = matching.keyword_normalise(name)
                if not keyword:
                    raise bad_param("includefield", f"{name[:64]!r} is not a DICOM keyword or tag")
                if keyword not in fields:
                    fields.append(keyword)
        fields += [k for k in [*filters, *returned] if k not in fields]

        try:
            rows = matching.level_queryset(level, filters, fuzzy=fuzzy)
        except matching.MatchingError as exc:
            raise bad_param("query", exc.message) from None
        cap = min(limit, MAX_RESULTS) if limit is not None else MAX_RESULTS
        page = list(rows[offset: offset + cap + 1])
        more = len(page) > cap
        page = page[:cap]
        root = base_url(request)
        columns, computed, from_header = _plan(level, fields)
        headers = _header_values(level, page, from_header) if from_header and page else {}
        body = []
        for row in page:
            item = _row_json(row, level, columns, computed)
            if from_header:
                found = headers.get(row.id, {})
                for tag in from_header:
                    key_text = f"{tag:08X}"
                    item[key_text] = found.get(key_text) or {"vr": dictionary_VR(tag).split(" or ")[0]}
            item["00081190"] = {"vr": "UR", "Value": [_retrieve_url(root, level, row)]}
            body.append(item)
        response = Response(body)
        warnings = []
        if more:
            warnings.append(
                '299 pacs "The number of results exceeded the maximum supported by the server. '
                'Additional results can be requested."'
            )
        if unsupported:
            warnings.append(f'299 pacs "Matching on {", ".join(unsupported)} is not supported; the key was ignored"')
        if warnings:
            response["Warning"] = ", ".join(warnings)
        logger.info("qido-rs level=%s keys=%d results=%d", level, len(filters), len(body))
        return response


class StudyQueryView(QueryView):
    level = matching.STUDY


class SeriesQueryView(QueryView):
    level = matching.SERIES


class InstanceQueryView(QueryView):
    level = matching.IMAGE


__all__ = ["InstanceQueryView", "SeriesQueryView", "StudyQueryView"]

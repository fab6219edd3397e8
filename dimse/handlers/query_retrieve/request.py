"""Q/R request identifiers (PS3.4 C.4.1.1.3, C.4.2.1.4, C.4.3.1.3): parsing and the instances to retrieve."""

from __future__ import annotations

from django.db.models import QuerySet
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataset import Dataset
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from pacs import matching
from pacs.charsets import TextDecoder
from pacs.matching import MatchingError

STUDY_ROOT = {
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelGet,
}
_TEXT_VRS = {"LO", "SH", "LT", "ST", "UT", "UC"}


def status_dataset(code: int, comment: str = "") -> Dataset:
    """A response status with an optional ErrorComment (LO: at most 64 characters)."""
    ds = Dataset()
    ds.Status = code
    if comment:
        ds.ErrorComment = comment[:64]
    return ds


def _element_text(elem) -> str:
    value = elem.value
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or value.__class__.__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    return str(value)


def identifier_parse(identifier: Dataset, model: str, charset_override: str = "") -> tuple[
        str, dict[str, str], list[str]]:
    """``(level, filters, requested keywords)`` of a Q/R request identifier.

    Text and person names are decoded like stored data (:mod:`pacs.charsets`):
    the declared SpecificCharacterSet, the calling node's charset override, and
    GBK/GB18030 bytes sent under a Latin-1 or missing declaration.

    Raises
    ------
    MatchingError
        Missing/unknown level, PATIENT level in Study Root, undecodable values.
    """
    try:
        decoder = TextDecoder.for_dataset(identifier, charset_override)
        level = matching.level_check(identifier.get("QueryRetrieveLevel", ""))
        filters: dict[str, str] = {}
        keywords: list[str] = []
        for tag in list(identifier.keys()):
            if tag.group in (0x0000, 0x0002) or tag.is_private:
                continue
            keyword = keyword_for_tag(tag)
            if not keyword:
                continue
            # Raw element first: text is decoded here, not by pydicom's declared-charset path.
            vr = identifier.get_item(tag).VR or dictionary_VR(tag).split(" or ")[0]
            keywords.append(keyword)
            if vr == "PN":
                filters[keyword] = decoder.person_name(identifier, tag).full
            elif vr in _TEXT_VRS:
                filters[keyword] = decoder.text(identifier, tag)
            elif vr != "SQ":
                filters[keyword] = _element_text(identifier[tag])
    except MatchingError:
        raise
    except Exception as exc:  # pydicom decodes lazily: bad VR/values surface here
        raise MatchingError(f"Cannot decode identifier: {exc}", dicom_status=0xC000) from exc
    if model in STUDY_ROOT and level == matching.PATIENT:
        raise MatchingError("PATIENT level is not part of the Study Root model")
    return level, filters, keywords


def retrieve_instances(level: str, filters: dict[str, str]) -> QuerySet:
    """Instances to retrieve for a C-MOVE/C-GET identifier (PS3.4 C.4.2.2.1), in series and instance order.

    The unique key of *level* must be given (a UID list is fine): an empty key
    would retrieve the whole archive.

    Raises
    ------
    MatchingError
        No unique key, a key not allowed at *level*, a malformed value.
    """
    unique = matching.UNIQUE_KEYS[level]
    value = (filters.get(unique) or "").strip()
    if not value or set(value) <= {"*", "?"}:
        raise MatchingError(f"A {level} level retrieve needs {unique}")
    matching.level_queryset(level, filters)  # validates keys against the requested level
    return (
        matching.level_queryset(matching.IMAGE, filters)
        .select_related(None)
        .order_by("series_id", "instance_number", "id")
    )

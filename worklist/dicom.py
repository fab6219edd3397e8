"""Worklist items as DICOM: C-FIND queries in, response identifiers and DICOM JSON out.

pydicom only (no pynetdicom): the DIMSE handler hands the decoded identifier
here and sends back what :func:`step_identifier` builds.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import Tag

from pacs.charsets import TextDecoder, declared_charsets
from pacs.matching import MatchingError
from worklist.charsets import ResponseCharset
from worklist.matching import ITEM_KEYS, SPS_SEQUENCE, STEP_KEYS, WorklistKey
from worklist.models import ScheduledProcedureStep, WorklistItem

_TEXT_VRS = {"LO", "SH", "LT", "ST", "UT", "UC"}


@dataclass
class WorklistQuery:
    """A parsed Modality Worklist C-FIND identifier (PS3.4 K.6.1.2)."""

    filters: dict[str, str] = field(default_factory=dict)
    step_filters: dict[str, str] = field(default_factory=dict)
    # Requested return keys, in request order: (tag, VR).
    return_keys: list[tuple[int, str]] = field(default_factory=list)
    # Keys requested inside the SPS item; None = sequence requested with no item (all).
    step_return_keys: list[tuple[int, str]] | None = None
    charset: ResponseCharset = field(default_factory=lambda: ResponseCharset.for_terms([]))


def _vr_of(elem) -> str:
    vr = elem.VR or ""
    if vr in ("", "UN"):
        try:
            vr = dictionary_VR(elem.tag).split(" or ")[0]
        except KeyError:
            vr = "UN"
    return vr


def _query_value(ds: Dataset, tag: int, vr: str, decoder: TextDecoder) -> str:
    if vr == "PN":
        return decoder.person_name(ds, tag).full
    if vr in _TEXT_VRS:
        return decoder.text(ds, tag)
    value = ds[tag].value
    if value is None:
        return ""
    if isinstance(value, (list, MultiValue)):
        return "\\".join(str(v) for v in value)
    if isinstance(value, bytes):
        return value.decode("ascii", "replace").strip(" \x00")
    return str(value).strip(" \x00")


def query_parse(identifier: Dataset, *, charset_override: str = "") -> WorklistQuery:
    """Split a worklist identifier into match values and the return-key structure.

    The response character set is the one the identifier names (or the calling
    AE's configured override).

    Raises
    ------
    MatchingError
        0xA900: a QueryRetrieveLevel value (the worklist model has no levels,
        PS3.4 K.6.1.1) or more than one item in the Scheduled Procedure Step
        Sequence (sequence matching takes one item, PS3.4 C.2.2.2.6).
    """
    terms = charset_override.split("\\") if charset_override else declared_charsets(identifier)
    if not charset_override and "SpecificCharacterSet" not in identifier:
        terms = []
    query = WorklistQuery(charset=ResponseCharset.for_terms(terms))
    decoder = TextDecoder.for_dataset(identifier, charset_override)
    for elem in identifier:
        tag = int(elem.tag)
        if Tag(tag).is_private or Tag(tag).element == 0 or tag == 0x00080005:
            continue
        keyword = keyword_for_tag(tag)
        vr = _vr_of(elem)
        if keyword == "QueryRetrieveLevel":
            if _query_value(identifier, tag, vr, decoder):
                raise MatchingError(
                    "QueryRetrieveLevel is not used by the Modality Worklist information model (PS3.4 K.6.1)"
                )
            continue
        query.return_keys.append((tag, vr))
        if keyword == SPS_SEQUENCE:
            _step_parse(elem.value, query, decoder)
            continue
        if vr == "SQ" or not keyword:
            continue
        query.filters[keyword] = _query_value(identifier, tag, vr, decoder)
    return query


def _step_parse(items, query: WorklistQuery, parent_decoder: TextDecoder) -> None:
    if not items:
        return
    if len(items) > 1:
        raise MatchingError(f"{SPS_SEQUENCE} may hold only one item in a query (PS3.4 C.2.2.2.6)")
    item = items[0]
    decoder = parent_decoder
    query.step_return_keys = []
    for elem in item:
        tag = int(elem.tag)
        if Tag(tag).is_private or Tag(tag).element == 0:
            continue
        vr = _vr_of(elem)
        query.step_return_keys.append((tag, vr))
        keyword = keyword_for_tag(tag)
        if vr == "SQ" or not keyword:
            continue
        query.step_filters[keyword] = _query_value(item, tag, vr, decoder)


# --- Values out ---------------------------------------------------------------------


def dicom_value(vr: str, value: object) -> str | None:
    """A model value as a DICOM string (DA ``YYYYMMDD``, TM ``HHMMSS``); None when empty."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime.date):
        return value.strftime("%Y%m%d")
    if isinstance(value, datetime.time):
        return value.strftime("%H%M%S") + (f".{value.microsecond:06d}" if value.microsecond else "")
    return str(value)


def _encoded(vr: str, value: object, charset: ResponseCharset) -> str | None:
    text = dicom_value(vr, value)
    if text is None:
        return None
    if vr == "PN":
        return charset.person_name(text)
    if vr in _TEXT_VRS:
        return charset.text(text)
    return text


def _add(ds: Dataset, tag: int, vr: str, key: WorklistKey | None, obj, charset: ResponseCharset) -> None:
    if vr == "SQ":
        ds.add_new(tag, "SQ", DicomSequence())
        return
    value = _encoded(key.vr, getattr(obj, key.field), charset) if key else None
    ds.add_new(tag, key.vr if key else vr, value)


def _step_item(step: ScheduledProcedureStep, keys: list[tuple[int, str]] | None, charset: ResponseCharset) -> Dataset:
    item = Dataset()
    if keys is None:
        keys = [(int(Tag(keyword)), key.vr) for keyword, key in STEP_KEYS.items()]
    for tag, vr in keys:
        _add(item, tag, vr, STEP_KEYS.get(keyword_for_tag(tag)), step, charset)
    return item


def step_identifier(step: ScheduledProcedureStep, query: WorklistQuery) -> Dataset:
    """The C-FIND response identifier for one matching step: exactly the requested keys.

    The Scheduled Procedure Step Sequence holds one item (this step) with the
    keys the modality asked for inside it; requested keys this archive does
    not hold come back empty (sequences with no items), as PS3.4 C.2.2.1.2
    says.  Text is made fit for ``query.charset`` (see :mod:`worklist.charsets`).
    """
    charset = query.charset
    ds = Dataset()
    if charset.terms:
        ds.SpecificCharacterSet = charset.terms if len(charset.terms) > 1 else charset.terms[0]
    for tag, vr in query.return_keys:
        keyword = keyword_for_tag(tag)
        if keyword == SPS_SEQUENCE:
            ds.ScheduledProcedureStepSequence = DicomSequence([_step_item(step, query.step_return_keys, charset)])
            continue
        _add(ds, tag, vr, ITEM_KEYS.get(keyword), step.item, charset)
    return ds


# --- REST representations ----------------------------------------------------------------


def item_keywords(item: WorklistItem) -> dict:
    """A worklist item as JSON with DICOM keywords: flat attributes plus the SPS list."""
    data: dict = {"id": item.pk}
    for keyword, key in ITEM_KEYS.items():
        data[keyword] = dicom_value(key.vr, getattr(item, key.field)) or ""
    data[SPS_SEQUENCE] = [
        {keyword: dicom_value(key.vr, getattr(step, key.field)) or "" for keyword, key in STEP_KEYS.items()}
        for step in item.steps.all()
    ]
    return data


def _json_dataset(obj, keys: dict[str, WorklistKey]) -> Dataset:
    ds = Dataset()
    for keyword, key in keys.items():
        value = dicom_value(key.vr, getattr(obj, key.field))
        if value is not None:
            setattr(ds, keyword, value)
    return ds


def item_dicom_json(item: WorklistItem) -> dict:
    """A worklist item in the DICOM JSON model (PS3.18 F.2), text in UTF-8."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.update(_json_dataset(item, ITEM_KEYS))
    ds.ScheduledProcedureStepSequence = DicomSequence([_json_dataset(step, STEP_KEYS) for step in item.steps.all()])
    return ds.to_json_dict()


def dicom_json_keywords(payload: object) -> dict:
    """Turn a DICOM JSON object (or a one-element array) into the keyword form.

    Raises
    ------
    ValueError
        Not a DICOM JSON dataset; the message says why.
    """
    if isinstance(payload, list):
        if len(payload) != 1:
            raise ValueError("send one DICOM JSON dataset (an object, or an array holding one)")
        payload = payload[0]
    if not isinstance(payload, dict):
        raise ValueError("a DICOM JSON dataset is an object keyed by 8-digit tags")
    try:
        ds = Dataset.from_json(payload)
    except Exception as exc:  # pydicom raises several types for malformed JSON
        raise ValueError(f"not a valid DICOM JSON dataset: {exc}") from None
    return _dataset_keywords(ds)


def _dataset_keywords(ds: Dataset) -> dict:
    out: dict = {}
    for elem in ds:
        keyword = elem.keyword or f"{int(elem.tag):08X}"
        if keyword == "SpecificCharacterSet":
            continue
        if elem.VR == "SQ":
            out[keyword] = [_dataset_keywords(item) for item in elem.value]
        elif elem.value is None:
            out[keyword] = ""
        elif isinstance(elem.value, MultiValue):
            out[keyword] = "\\".join(str(v) for v in elem.value)
        else:
            out[keyword] = str(elem.value)
    return out

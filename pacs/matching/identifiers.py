"""Response identifiers of matched rows (PS3.4 C.4.1.2.2, C.6.1.1.x, QIDO-RS).

An :class:`IdentifierPlan` is worked out once per query shape (level and
requested keys): which attributes come back, in tag order, and the index
columns they are read from.  Two ways to use it:

* :func:`identifier_rows` - C-FIND: one ``values_list`` query over the matched
  rows (no model instances) plus, when SOPClassesInStudy is requested, one
  query per chunk of rows; yields ``[(tag, VR, value), ...]`` per match.
* :func:`level_identifier` - one pydicom ``Dataset`` from a model instance
  (QIDO-RS computed attributes, the web pages).

Values are DICOM-ready: ``str`` (dates ``YYYYMMDD``, times ``HHMMSS[.ffffff]``),
``list[str]`` for multi-valued CS, ``int`` for IS/US, ``None`` when empty.
All text is decoded Unicode: the identifier's SpecificCharacterSet is
``ISO_IR 192``.
"""

from __future__ import annotations

import datetime
import functools
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from django.db.models import Model, QuerySet
from django.utils import timezone
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from pacs.matching.keys import (
    LEVELS,
    PREFIX,
    STUDY,
    UNIQUE_KEYS,
    MatchingError,
    key_lookup,
    keyword_normalise,
    level_check,
)
from pacs.models import Instance

#: ``Column.source`` values other than an ORM path.
CONSTANT, COMPUTED, RETRIEVE_AET, EMPTY = "constant", "computed", "retrieve_aet", "empty"
CHARSET = "ISO_IR 192"
_SPECIFIC_CHARACTER_SET = 0x00080005
_QUERY_RETRIEVE_LEVEL = 0x00080052


@dataclass(frozen=True)
class Column:
    """One returned attribute: where its value comes from.

    ``source`` is ``"field"`` (read ``field`` from the row), ``CONSTANT``
    (``constant``), ``COMPUTED`` (an extra query), ``RETRIEVE_AET`` (the
    answering AE) or ``EMPTY`` (a key the index does not hold).
    """

    keyword: str
    tag: int
    vr: str
    source: str
    field: str = ""
    constant: object = None


@dataclass(frozen=True)
class IdentifierPlan:
    """The returned attributes of one query shape, in ascending tag order.

    ``fields`` are the ``values_list`` paths :func:`identifier_rows` reads:
    ``pk`` first, then every column's field, then the study id when a
    computed study attribute needs it.
    """

    level: str
    columns: tuple[Column, ...]
    fields: tuple[str, ...]
    study_field: str = ""

    @property
    def computed(self) -> tuple[str, ...]:
        return tuple(c.keyword for c in self.columns if c.source == COMPUTED)


@functools.lru_cache(maxsize=256)
def identifier_plan(level: str, keywords: tuple[str, ...]) -> IdentifierPlan:
    """The :class:`IdentifierPlan` for *level* and the requested *keywords* (keywords or hex tags).

    Returned: SpecificCharacterSet, QueryRetrieveLevel, the unique keys of
    *level* and the levels above, then every requested key.  Unknown DICOM
    keywords come back empty; keys of lower levels are dropped.

    Raises
    ------
    MatchingError
        Unknown level.
    """
    level = level_check(level)
    wanted: list[str] = [UNIQUE_KEYS[upper] for upper in LEVELS[: LEVELS.index(level) + 1]]
    for keyword in keywords:
        name = keyword_normalise(keyword)
        if name and name not in wanted and name not in ("SpecificCharacterSet", "QueryRetrieveLevel"):
            wanted.append(name)
    columns = [
        Column("SpecificCharacterSet", _SPECIFIC_CHARACTER_SET, "CS", CONSTANT, constant=CHARSET),
        Column("QueryRetrieveLevel", _QUERY_RETRIEVE_LEVEL, "CS", CONSTANT, constant=level),
    ]
    for name in wanted:
        tag = tag_for_keyword(name)
        vr = dictionary_VR(tag).split(" or ")[0]
        if name == "RetrieveAETitle":
            columns.append(Column(name, tag, vr, RETRIEVE_AET))
            continue
        if name == "InstanceAvailability":
            columns.append(Column(name, tag, vr, CONSTANT, constant="ONLINE"))
            continue
        try:
            key = key_lookup(level, name)
        except MatchingError:
            continue  # a lower level's key: not returned
        if key is None:
            columns.append(Column(name, tag, vr, EMPTY))
        elif key.field is None:
            columns.append(Column(name, tag, vr, COMPUTED))
        else:
            columns.append(Column(name, tag, key.vr, "field", field=key.field))
    columns.sort(key=lambda c: c.tag)
    fields = ["pk"]
    fields += [c.field for c in columns if c.field and c.field not in fields]
    study_field = ""
    if any(c.source == COMPUTED for c in columns):
        study_field = "pk" if level == STUDY else PREFIX[(level, STUDY)] + "id"
        if study_field not in fields:
            fields.append(study_field)
    return IdentifierPlan(level=level, columns=tuple(columns), fields=tuple(fields), study_field=study_field)


def dicom_value(vr: str, value: object) -> object:
    """An index value as a DICOM value of *vr* (see the module docstring); ``None`` when empty."""
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


def _sop_classes_by_study(study_ids: Iterable[int]) -> dict[int, list[str]]:
    """SOPClassesInStudy of many studies in one query."""
    found: dict[int, list[str]] = {}
    pairs = (
        Instance.objects.filter(series__study_id__in=list(study_ids))
        .order_by()
        .values_list("series__study_id", "sop_class_uid")
        .distinct()
    )
    for study_id, sop_class_uid in pairs:
        found.setdefault(study_id, []).append(sop_class_uid)
    return {study_id: sorted(uids) for study_id, uids in found.items()}


def identifier_rows(
    queryset: QuerySet, plan: IdentifierPlan, *, retrieve_aet: str = "", chunk_size: int = 500
) -> Iterator[list[tuple[int, str, object]]]:
    """``[(tag, VR, value), ...]`` in tag order for each row of *queryset* (a :func:`level_queryset` result).

    One query reads exactly the plan's columns for all rows; SOPClassesInStudy,
    when requested, costs one more query per *chunk_size* rows.
    """
    rows = queryset.values_list(*plan.fields).iterator(chunk_size=chunk_size)
    study_index = plan.fields.index(plan.study_field) if plan.study_field else -1
    readers = []
    for column in plan.columns:
        if column.source == "field":
            readers.append((column.tag, column.vr, plan.fields.index(column.field), None))
        elif column.source == CONSTANT:
            readers.append((column.tag, column.vr, -1, column.constant))
        elif column.source == RETRIEVE_AET:
            readers.append((column.tag, column.vr, -1, retrieve_aet or None))
        elif column.source == COMPUTED:
            readers.append((column.tag, column.vr, -2, column.keyword))
        else:
            readers.append((column.tag, column.vr, -1, None))
    while chunk := list(itertools.islice(rows, chunk_size)):
        sop_classes = _sop_classes_by_study({row[study_index] for row in chunk}) if study_index >= 0 else {}
        for row in chunk:
            items = []
            for tag, vr, index, constant in readers:
                if index >= 0:
                    items.append((tag, vr, dicom_value(vr, row[index])))
                elif index == -1:
                    items.append((tag, vr, constant))
                else:  # SOPClassesInStudy, the one computed attribute
                    items.append((tag, vr, sop_classes.get(row[study_index]) or None))
            yield items


def identifier_dataset(items: Iterable[tuple[int, str, object]]) -> Dataset:
    """A pydicom ``Dataset`` of ``(tag, VR, value)`` items (empty SQ for sequence keys)."""
    ds = Dataset()
    for tag, vr, value in items:
        ds.add_new(tag, vr, DicomSequence() if vr == "SQ" else value)
    return ds


def _value_of(obj: Model, path: str) -> object:
    for part in path.split("__"):
        if obj is None:
            return None
        obj = getattr(obj, part)
    return obj


def level_identifier(obj: Model, level: str, keywords: Iterable[str], *, retrieve_aet: str = "") -> Dataset:
    """The C-FIND/QIDO-RS response identifier of one matched model instance.

    Parameters
    ----------
    obj
        A row from :func:`pacs.matching.level_queryset` for the same *level*.
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
        of *level* and above, then every requested key.  SOPClassesInStudy
        costs one query (use :func:`identifier_rows` for many rows).
    """
    plan = identifier_plan(level_check(level), tuple(keywords))
    items = []
    for column in plan.columns:
        if column.source == "field":
            value = dicom_value(column.vr, _value_of(obj, column.field))
        elif column.source == CONSTANT:
            value = column.constant
        elif column.source == RETRIEVE_AET:
            value = retrieve_aet or None
        elif column.source == COMPUTED:
            study_id = obj.pk if plan.level == STUDY else _value_of(obj, plan.study_field)
            value = _sop_classes_by_study([study_id]).get(study_id) or None
        else:
            value = None
        items.append((column.tag, column.vr, value))
    return identifier_dataset(items)

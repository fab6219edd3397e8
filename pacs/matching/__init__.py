"""DICOM attribute matching and response identifiers (PS3.4 C.2.2.2, C.4.1.2, C.6).

The one implementation of query matching, shared by C-FIND (Patient Root and
Study Root), QIDO-RS, the archive API and the web study list.  Callers speak
DICOM keywords and string values; this package turns them into Django ``Q``
objects over :mod:`pacs.models` and turns matched rows back into identifiers.

Modules: :mod:`~pacs.matching.keys` (levels, keys, :class:`MatchingError`),
:mod:`~pacs.matching.values` (one value -> ``Q``),
:mod:`~pacs.matching.querysets` (filters -> rows of a level),
:mod:`~pacs.matching.identifiers` (rows -> response identifiers).
Import from ``pacs.matching``; the names below are its API.

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
    Keys of upper levels filter in a subquery on their own table.
``unsupported_keys(level, keywords) -> list[str]``
    The keywords among *keywords* the index cannot match at *level*.
``identifier_plan(level, keywords) -> IdentifierPlan`` and ``identifier_rows(queryset, plan) -> [(tag, VR, value)]``
    C-FIND's path: the returned attributes worked out once per query shape,
    then one ``values_list`` query for all matches (plus one per 500 matches
    for SOPClassesInStudy when requested), no model instances.
``level_identifier(obj, level, keywords, *, retrieve_aet="") -> Dataset``
    The response identifier of one matched model instance: exactly the
    requested *keywords* (absent values empty), the unique keys of the level
    and those above, QueryRetrieveLevel and SpecificCharacterSet ``ISO_IR 192``
    (all text is decoded Unicode).  SOPClassesInStudy costs one query per
    study and is computed only when requested.

Example::

    qs = level_queryset("STUDY", {"PatientName": "WANG*", "StudyDate": "20240101-"})
    plan = identifier_plan("STUDY", ("PatientName", "StudyDate", "ModalitiesInStudy"))
    for items in identifier_rows(qs, plan):
        ds = identifier_dataset(items)
"""

from pacs.matching.identifiers import (
    CHARSET,
    Column,
    IdentifierPlan,
    dicom_value,
    identifier_dataset,
    identifier_plan,
    identifier_rows,
    level_identifier,
)
from pacs.matching.keys import (
    CONTROL_KEYS,
    IMAGE,
    LEVEL_KEYS,
    LEVELS,
    PATIENT,
    SERIES,
    STUDY,
    UNIQUE_KEYS,
    Key,
    MatchingError,
    key_lookup,
    keyword_normalise,
    level_check,
    unsupported_keys,
)
from pacs.matching.querysets import level_queryset
from pacs.matching.values import value_q

__all__ = [
    "CHARSET",
    "CONTROL_KEYS",
    "IMAGE",
    "LEVELS",
    "LEVEL_KEYS",
    "PATIENT",
    "SERIES",
    "STUDY",
    "UNIQUE_KEYS",
    "Column",
    "IdentifierPlan",
    "Key",
    "MatchingError",
    "dicom_value",
    "identifier_dataset",
    "identifier_plan",
    "identifier_rows",
    "key_lookup",
    "keyword_normalise",
    "level_check",
    "level_identifier",
    "level_queryset",
    "unsupported_keys",
    "value_q",
]

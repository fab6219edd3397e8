"""Reads of the archive index that only DICOMweb needs."""

from __future__ import annotations

from django.db.models import Min

from pacs.models import Instance, Series, Study


def representative_files(level: str, ids: list[int]) -> dict[int, str]:
    """``{row id: file_path}`` of one archived instance per STUDY or SERIES row (the first stored).

    QIDO-RS reads attributes the index does not hold (sequences such as
    ProcedureCodeSequence) from this instance's header.  Two queries whatever
    the number of rows.
    """
    if not ids:
        return {}
    if level == "STUDY":
        firsts = Study.objects.filter(id__in=ids).annotate(first=Min("series__instances__id"))
    elif level == "SERIES":
        firsts = Series.objects.filter(id__in=ids).annotate(first=Min("instances__id"))
    else:
        return dict(Instance.objects.filter(id__in=ids).values_list("id", "file_path"))
    pairs = [(row_id, first) for row_id, first in firsts.values_list("id", "first") if first is not None]
    paths = dict(Instance.objects.filter(id__in=[first for _, first in pairs]).values_list("id", "file_path"))
    return {row_id: paths[first] for row_id, first in pairs if first in paths}


__all__ = ["representative_files"]

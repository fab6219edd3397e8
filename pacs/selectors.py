"""Reads of the archive index: what DICOMweb, the REST API and the pages show.

Every function returns querysets or plain values built with a fixed number of
queries (no N+1): listing views rely on ``select_related`` chains declared here.
Matching of query keys lives in :mod:`pacs.matching`; this module applies it.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import F, QuerySet

from pacs.models import Instance, Patient, Series, Study


class NotFound(LookupError):
    """The requested study/series/instance is not in the archive."""


def patient_queryset() -> QuerySet[Patient]:
    return Patient.objects.all()


def study_queryset() -> QuerySet[Study]:
    return Study.objects.select_related("patient")


def series_queryset() -> QuerySet[Series]:
    return Series.objects.select_related("study", "study__patient")


def instance_queryset() -> QuerySet[Instance]:
    return Instance.objects.select_related("series", "series__study", "series__study__patient")


def study_get(*, study_instance_uid: str) -> Study:
    """The study with this UID (patient joined).

    Raises
    ------
    NotFound
    """
    study = study_queryset().filter(study_instance_uid=study_instance_uid).first()
    if study is None:
        raise NotFound(f"Study {study_instance_uid} not found")
    return study


def series_get(*, study_instance_uid: str | None, series_instance_uid: str) -> Series:
    """The series with this UID, inside the given study when one is named.

    Raises
    ------
    NotFound
    """
    rows = series_queryset().filter(series_instance_uid=series_instance_uid)
    if study_instance_uid:
        rows = rows.filter(study__study_instance_uid=study_instance_uid)
    series = rows.first()
    if series is None:
        raise NotFound(f"Series {series_instance_uid} not found")
    return series


def instance_get(
    *, sop_instance_uid: str, study_instance_uid: str | None = None, series_instance_uid: str | None = None
) -> Instance:
    """The instance with this UID, inside the given study/series when named.

    Raises
    ------
    NotFound
    """
    rows = instance_queryset().filter(sop_instance_uid=sop_instance_uid)
    if series_instance_uid:
        rows = rows.filter(series__series_instance_uid=series_instance_uid)
    if study_instance_uid:
        rows = rows.filter(series__study__study_instance_uid=study_instance_uid)
    instance = rows.first()
    if instance is None:
        raise NotFound(f"Instance {sop_instance_uid} not found")
    return instance


@dataclass(frozen=True)
class StoredInstance:
    """What a retrieval needs of one archived instance (no ORM object: safe to stream)."""

    id: int
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    file_path: str
    file_size: int
    number_of_frames: int | None
    rows: int | None
    columns: int | None
    bits_allocated: int | None


_STORED_FIELDS = (
    "id",
    "series__study__study_instance_uid",
    "series__series_instance_uid",
    "sop_instance_uid",
    "sop_class_uid",
    "transfer_syntax_uid",
    "file_path",
    "file_size",
    "number_of_frames",
    "rows",
    "columns",
    "bits_allocated",
)


def stored_instances(
    *, study_instance_uid: str, series_instance_uid: str | None = None, sop_instance_uid: str | None = None
) -> list[StoredInstance]:
    """Archived instances of a study, series or single instance, in series/instance order.

    One query whatever the count.

    Raises
    ------
    NotFound
        Nothing matches (unknown UID, or UIDs that do not belong together).
    """
    rows = Instance.objects.filter(series__study__study_instance_uid=study_instance_uid)
    if series_instance_uid:
        rows = rows.filter(series__series_instance_uid=series_instance_uid)
    if sop_instance_uid:
        rows = rows.filter(sop_instance_uid=sop_instance_uid)
    rows = rows.order_by("series__series_number", "series__id", "instance_number", "id").values_list(*_STORED_FIELDS)
    result = [StoredInstance(*row) for row in rows]
    if not result:
        what = sop_instance_uid or series_instance_uid or study_instance_uid
        raise NotFound(f"{what} not found")
    return result


def stored_instance_middle(*, study_instance_uid: str, series_instance_uid: str | None = None) -> StoredInstance:
    """The instance a thumbnail shows: the middle one of the (first) series.

    Raises
    ------
    NotFound
    """
    if series_instance_uid is None:
        first = (
            Series.objects.filter(study__study_instance_uid=study_instance_uid, instances__rows__isnull=False)
            .order_by("series_number", "id")
            .values_list("series_instance_uid", flat=True)
            .first()
        )
        if first is None:
            raise NotFound(f"Study {study_instance_uid} has no image")
        series_instance_uid = first
    instances = [
        item
        for item in stored_instances(study_instance_uid=study_instance_uid, series_instance_uid=series_instance_uid)
        if item.rows
    ]
    if not instances:
        raise NotFound(f"Series {series_instance_uid} has no image")
    return instances[len(instances) // 2]


def download_rows(*, study_id: int | None = None, series_id: int | None = None) -> list[dict]:
    """Rows :func:`pacs.services.studies.archive_stream` needs for a study or series download."""
    rows = Instance.objects.all()
    if study_id is not None:
        rows = rows.filter(series__study_id=study_id)
    if series_id is not None:
        rows = rows.filter(series_id=series_id)
    return list(
        rows.order_by("series__series_number", "series_id", "instance_number", "id").values(
            "file_path",
            "sop_instance_uid",
            series_instance_uid=F("series__series_instance_uid"),
            study_instance_uid=F("series__study__study_instance_uid"),
            patient_id=F("series__study__patient__patient_id"),
        )
    )


def log_tail(*, path, lines: int = 200, level: str = "", search: str = "") -> list[str]:
    """The last *lines* lines of a log file matching a minimum *level* and a *search* text.

    Reads backwards in 64 KiB blocks, so a large log costs only what is shown.
    """
    order = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
    wanted = set(order[order.index(level):]) if level in order else None
    needle = search.lower()
    found: list[str] = []
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        position = fh.tell()
        rest = b""
        while position > 0 and len(found) < lines:
            step = min(65536, position)
            position -= step
            fh.seek(position)
            block = fh.read(step) + rest
            pieces = block.split(b"\n")
            rest = pieces[0] if position > 0 else b""
            candidates = pieces[1:] if position > 0 else pieces
            for raw in reversed(candidates):
                line = raw.decode("utf-8", "replace").rstrip("\r")
                if not line:
                    continue
                if wanted is not None:
                    marker = line.find("level=")
                    line_level = line[marker + 6:].split(" ", 1)[0] if marker >= 0 else ""
                    if line_level not in wanted:
                        continue
                if needle and needle not in line.lower():
                    continue
                found.append(line)
                if len(found) >= lines:
                    break
    return list(reversed(found))

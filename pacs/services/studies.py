"""Edits, deletes and downloads of archived patients, studies, series and instances.

* Demographics edits are written into every stored file of the study (temp
  file, fsync, rename, new checksum) and then into the index, so a later
  retrieve or re-index shows the same values as the study list.
* Deletes remove files and rows and keep every denormalised count above them
  right (series/instances per study and patient, size, ModalitiesInStudy); a
  patient left without studies is removed too.
* Downloads stream a ZIP (stored, no recompression of pixel data) built while
  it is sent; the DICOMDIR option lays the files out as a PS3.10 file-set.
"""

from __future__ import annotations

import datetime
import io
import logging
import os
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Sum
from pydicom import dcmread

from pacs import storage
from pacs.exceptions import DatasetMismatch
from pacs.models import Instance, Patient, Series, Study

logger = logging.getLogger(__name__)

# Editable attributes: keyword -> (model, field, max length).
PATIENT_FIELDS = {
    "PatientName": "patient_name",
    "PatientID": "patient_id",
    "PatientBirthDate": "patient_birth_date",
    "PatientSex": "patient_sex",
}
STUDY_FIELDS = {
    "StudyDescription": "study_description",
    "AccessionNumber": "accession_number",
    "ReferringPhysicianName": "referring_physician_name",
    "StudyID": "study_id",
}
EDITABLE = {**PATIENT_FIELDS, **STUDY_FIELDS}
_MAX_LENGTH = {"PatientName": 324, "PatientID": 64, "PatientSex": 16, "StudyDescription": 64,
               "AccessionNumber": 16, "ReferringPhysicianName": 324, "StudyID": 16}


def _validated(changes: dict[str, str]) -> dict[str, str]:
    out = {}
    for keyword, value in changes.items():
        if keyword not in EDITABLE:
            raise DatasetMismatch(f"{keyword} cannot be edited; editable: {', '.join(sorted(EDITABLE))}")
        value = "" if value is None else str(value).strip()
        if "\\" in value or any(ord(c) < 32 for c in value):
            raise DatasetMismatch(f"{keyword}: backslash and control characters are not allowed")
        if len(value) > _MAX_LENGTH.get(keyword, 64):
            raise DatasetMismatch(f"{keyword}: at most {_MAX_LENGTH.get(keyword, 64)} characters")
        if keyword == "PatientBirthDate" and value:
            try:
                datetime.datetime.strptime(value, "%Y%m%d")
            except ValueError:
                raise DatasetMismatch("PatientBirthDate: use YYYYMMDD") from None
        if keyword == "PatientSex" and value and value.upper() not in ("M", "F", "O"):
            raise DatasetMismatch("PatientSex: M, F or O")
        if keyword == "PatientID" and not value:
            raise DatasetMismatch("PatientID cannot be empty")
        out[keyword] = value.upper() if keyword == "PatientSex" else value
    return out


def _file_rewrite(instance: Instance, changes: dict[str, str]) -> tuple[str, int]:
    """Write *changes* into the stored file; returns (checksum, size). Atomic per file."""
    path = storage.absolute_path(instance.file_path)
    ds = dcmread(path)
    non_ascii = any(not value.isascii() for value in changes.values())
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    if non_ascii:
        # Values are Unicode: declare UTF-8 so every reader decodes them (PS3.5 6.1.2.5.3).
        ds.SpecificCharacterSet = "ISO_IR 192"
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    data = out.getvalue()
    temp, checksum = storage.temp_write(data)
    storage.file_commit(temp, instance.file_path)
    return checksum, len(data)


def _index_values(changes: dict[str, str]) -> tuple[dict, dict]:
    patient, study = {}, {}
    for keyword, value in changes.items():
        if keyword in PATIENT_FIELDS:
            field = PATIENT_FIELDS[keyword]
            if keyword == "PatientBirthDate":
                patient[field] = datetime.datetime.strptime(value, "%Y%m%d").date() if value else None
            elif keyword == "PatientName":
                groups = value.split("=")
                patient["patient_name"] = value
                patient["patient_name_alphabetic"] = groups[0]
                patient["patient_name_ideographic"] = groups[1] if len(groups) > 1 else ""
                patient["patient_name_phonetic"] = groups[2] if len(groups) > 2 else ""
            else:
                patient[field] = value
        else:
            study[STUDY_FIELDS[keyword]] = value
    return patient, study


def study_demographics_update(*, study_id: int, changes: dict[str, str]) -> Study:
    """Edit patient/study attributes of one study, in its files and in the index.

    Parameters
    ----------
    study_id
        Primary key of the study.
    changes
        ``{keyword: value}`` among :data:`EDITABLE`.  A new PatientID moves the
        study to that patient (created when new); counts follow.

    Returns
    -------
    Study
        The updated study (patient joined).

    Raises
    ------
    DatasetMismatch
        A keyword that cannot be edited or an invalid value.
    """
    changes = _validated(changes)
    study = Study.objects.select_related("patient").get(pk=study_id)
    if not changes:
        return study
    instances = list(Instance.objects.filter(series__study=study))
    rewritten = {}
    for instance in instances:
        rewritten[instance.pk] = _file_rewrite(instance, changes)
    patient_values, study_values = _index_values(changes)
    with transaction.atomic():
        for instance in instances:
            checksum, size = rewritten[instance.pk]
            Instance.objects.filter(pk=instance.pk).update(checksum=checksum, file_size=size)
        size_total = sum(size for _, size in rewritten.values())
        if study_values or instances:
            Study.objects.filter(pk=study.pk).update(size_bytes=size_total, **study_values)
        if patient_values:
            _study_patient_update(study, patient_values)
    logger.info("study demographics updated study_instance_uid=%s files=%d keys=%s", study.study_instance_uid,
                len(instances), ",".join(sorted(changes)))
    return Study.objects.select_related("patient").get(pk=study.pk)


def _study_patient_update(study: Study, values: dict) -> None:
    """Apply patient values; a changed PatientID moves the study to that patient."""
    old = study.patient
    new_id = values.get("patient_id", old.patient_id)
    if new_id == old.patient_id:
        Patient.objects.filter(pk=old.pk).update(**values)
        return
    target, _ = Patient.objects.get_or_create(
        patient_id=new_id, issuer_of_patient_id=old.issuer_of_patient_id,
        defaults={k: getattr(old, k) for k in ("patient_name", "patient_name_alphabetic", "patient_name_ideographic",
                                                "patient_name_phonetic", "patient_birth_date", "patient_sex")},
    )
    Patient.objects.filter(pk=target.pk).update(**values)
    Study.objects.filter(pk=study.pk).update(patient=target)
    _patient_counts_refresh(old.pk)
    _patient_counts_refresh(target.pk)


def _patient_counts_refresh(patient_id: int) -> None:
    totals = Study.objects.filter(patient_id=patient_id).aggregate(
        studies=Count("id"), series=Sum("number_of_study_related_series"),
        instances=Sum("number_of_study_related_instances"),
    )
    if not totals["studies"]:
        Patient.objects.filter(pk=patient_id).delete()
        return
    Patient.objects.filter(pk=patient_id).update(
        number_of_patient_related_studies=totals["studies"],
        number_of_patient_related_series=totals["series"] or 0,
        number_of_patient_related_instances=totals["instances"] or 0,
    )


def patient_demographics_update(*, patient_id: int, changes: dict[str, str]) -> Patient | None:
    """Edit patient attributes in every study of the patient (files and index).

    Returns the patient the studies now belong to.
    """
    changes = _validated(changes)
    unknown = set(changes) - set(PATIENT_FIELDS)
    if unknown:
        raise DatasetMismatch(f"{', '.join(sorted(unknown))} are study attributes; edit them on the study")
    study_ids = list(Study.objects.filter(patient_id=patient_id).values_list("id", flat=True))
    last = None
    for study_id in study_ids:
        last = study_demographics_update(study_id=study_id, changes=changes)
    if last is None:
        patient_values, _ = _index_values(changes)
        Patient.objects.filter(pk=patient_id).update(**patient_values)
        return Patient.objects.filter(pk=patient_id).first()
    return last.patient


# --- Delete ------------------------------------------------------------------------


def _files_remove(paths: Iterable[str]) -> int:
    removed = 0
    for relative in paths:
        try:
            storage.file_remove(storage.absolute_path(relative))
            removed += 1
        except Exception as exc:  # a missing/unsafe path must not stop the delete
            logger.warning("delete file failed path=%s error=%s", relative, exc)
    return removed


def instances_delete(*, instance_ids: list[int]) -> dict:
    """Delete instances (files and rows) and fix every count above them.

    Returns ``{"instances": n, "series": n, "studies": n, "patients": n, "files": n}``
    (rows removed, empty parents included).
    """
    rows = list(
        Instance.objects.filter(pk__in=instance_ids).values_list("id", "file_path", "file_size", "series_id",
                                                                  "series__study_id", "series__study__patient_id")
    )
    if not rows:
        return {"instances": 0, "series": 0, "studies": 0, "patients": 0, "files": 0}
    series_ids = {row[3] for row in rows}
    study_ids = {row[4] for row in rows}
    patient_ids = {row[5] for row in rows}
    with transaction.atomic():
        Instance.objects.filter(pk__in=[row[0] for row in rows]).delete()
        removed_series = Series.objects.filter(pk__in=series_ids, instances__isnull=True).delete()[1].get(
            "pacs.Series", 0)
        for series_id in series_ids:
            Series.objects.filter(pk=series_id).update(
                number_of_series_related_instances=Instance.objects.filter(series_id=series_id).count()
            )
        removed_studies = 0
        for study_id in study_ids:
            remaining = Instance.objects.filter(series__study_id=study_id).aggregate(n=Count("id"), size=Sum("file_size"))
            if not remaining["n"]:
                Study.objects.filter(pk=study_id).delete()
                removed_studies += 1
                continue
            modalities = sorted(set(Series.objects.filter(study_id=study_id).exclude(modality="")
                                    .values_list("modality", flat=True)))
            Study.objects.filter(pk=study_id).update(
                number_of_study_related_instances=remaining["n"],
                number_of_study_related_series=Series.objects.filter(study_id=study_id).count(),
                size_bytes=remaining["size"] or 0,
                modalities_in_study="\\".join(modalities)[:128],
            )
        removed_patients = 0
        for patient_id in patient_ids:
            before = Patient.objects.filter(pk=patient_id).exists()
            _patient_counts_refresh(patient_id)
            if before and not Patient.objects.filter(pk=patient_id).exists():
                removed_patients += 1
    files = _files_remove(row[1] for row in rows)
    result = {"instances": len(rows), "series": removed_series, "studies": removed_studies,
              "patients": removed_patients, "files": files}
    logger.info("instances deleted %s", " ".join(f"{k}={v}" for k, v in result.items()))
    return result


def study_delete(*, study_id: int) -> dict:
    """Delete a study with its series, instances and files (see :func:`instances_delete`)."""
    ids = list(Instance.objects.filter(series__study_id=study_id).values_list("id", flat=True))
    if not ids:
        study = Study.objects.filter(pk=study_id).first()
        if study:
            patient_id = study.patient_id
            with transaction.atomic():
                study.delete()
                _patient_counts_refresh(patient_id)
        return {"instances": 0, "series": 0, "studies": 1 if study else 0, "patients": 0, "files": 0}
    return instances_delete(instance_ids=ids)


def series_delete(*, series_id: int) -> dict:
    ids = list(Instance.objects.filter(series_id=series_id).values_list("id", flat=True))
    return instances_delete(instance_ids=ids)


def patient_delete(*, patient_id: int) -> dict:
    ids = list(Instance.objects.filter(series__study__patient_id=patient_id).values_list("id", flat=True))
    result = instances_delete(instance_ids=ids)
    if Patient.objects.filter(pk=patient_id).exists():
        Patient.objects.filter(pk=patient_id).delete()
        result["patients"] += 1
    return result


# --- Download ----------------------------------------------------------------------


class _Sink(io.RawIOBase):
    """Write-only stream collecting what ZipFile writes, drained between files."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.position = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.buffer += data
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def drain(self) -> bytes:
        out = bytes(self.buffer)
        self.buffer.clear()
        return out


def _zip_entries(entries: Iterable[tuple[str, Path]]) -> Iterator[bytes]:
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, path in entries:
            with open(path, "rb") as src, archive.open(name, "w", force_zip64=True) as dst:
                while chunk := src.read(1024 * 1024):
                    dst.write(chunk)
                    if len(sink.buffer) >= 1024 * 1024:
                        yield sink.drain()
            yield sink.drain()
    yield sink.drain()


def _safe(text: str) -> str:
    return storage._path_component(text or "UNKNOWN")


def archive_stream(*, instance_rows: list[dict], dicomdir: bool) -> Iterator[bytes]:
    """ZIP bytes of the given instances, produced while sent.

    ``instance_rows`` are dicts with ``file_path``, ``sop_instance_uid`` and
    the patient/study/series UIDs (from :func:`pacs.selectors.download_rows`).
    With *dicomdir* the files are laid out as a PS3.10 file-set with a
    DICOMDIR (pydicom's FileSet, written to a temp folder first).
    """
    if not dicomdir:
        entries = (
            (f"{_safe(row['patient_id'])}/{row['study_instance_uid']}/{row['series_instance_uid']}/"
             f"{row['sop_instance_uid']}.dcm", storage.absolute_path(row["file_path"]))
            for row in instance_rows
        )
        yield from _zip_entries(entries)
        return
    from pydicom.fileset import FileSet

    Path(settings.PACS_TEMP_DIR).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.PACS_TEMP_DIR, prefix="dicomdir-") as folder:
        fileset = FileSet()
        for row in instance_rows:
            fileset.add(str(storage.absolute_path(row["file_path"])))
        fileset.write(folder)
        root = Path(folder)
        files = sorted(p for p in root.rglob("*") if p.is_file())
        yield from _zip_entries((os.fspath(p.relative_to(root)), p) for p in files)


__all__ = [
    "study_demographics_update", "patient_demographics_update", "instances_delete", "study_delete",
    "series_delete", "patient_delete", "archive_stream", "EDITABLE",
]

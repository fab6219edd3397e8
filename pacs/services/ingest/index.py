"""Index writes of ingest: Patient -> Study -> Series -> Instance rows and their counts."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from pacs.exceptions import DatasetMismatch
from pacs.models import Instance, Patient, Series, Study
from pacs.services.ingest.parse import cut
from pacs.services.ingest.records import Header, IngestOrigin


def _changed(obj: object, values: dict) -> dict:
    """Non-empty values that differ from *obj* (what a newer instance updates)."""
    return {k: v for k, v in values.items() if v not in (None, "") and getattr(obj, k) != v}


class _HierarchyCache:
    """Recently written (series -> study -> patient) rows of this process.

    A modality sends a series instance after instance; remembering the row ids
    and the attributes last written lets the next instance skip three lookups
    and the attribute comparison (measured: ~8 ms -> ~2 ms per instance).
    Entries live briefly and a foreign-key failure (row deleted meanwhile)
    drops the entry and falls back to the full path.
    """

    TTL_SECONDS = 30.0
    SIZE = 512

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple] = OrderedDict()

    def get(self, series_uid: str) -> tuple | None:
        with self._lock:
            entry = self._entries.get(series_uid)
            if entry is None or time.monotonic() - entry[0] > self.TTL_SECONDS:
                return None
            return entry

    def put(self, series_uid: str, entry: tuple) -> None:
        with self._lock:
            self._entries[series_uid] = (time.monotonic(), *entry)
            self._entries.move_to_end(series_uid)
            while len(self._entries) > self.SIZE:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


hierarchy_cache = _HierarchyCache()


def _attrs_key(attrs: dict) -> tuple:
    return (attrs["study_instance_uid"], repr(attrs["patient"]), repr(attrs["study"]))


def index_upsert(
    *,
    attrs: dict,
    header: Header,
    relative: str,
    checksum: str,
    origin: IngestOrigin,
    update_attributes: bool,
    replace_id: int | None,
) -> int:
    cached = hierarchy_cache.get(attrs["series_instance_uid"]) if replace_id is None else None
    if cached and cached[4] == _attrs_key(attrs):
        _, series_id, study_id, patient_id, _key = cached
        try:
            with transaction.atomic():
                return _fast_insert(
                    series_id, study_id, patient_id, attrs["series_instance_uid"], header.size,
                    _instance_fields(attrs, header, relative, checksum, origin),
                )
        except _StaleHierarchy:
            hierarchy_cache.clear()
        except IntegrityError:
            # The series was deleted meanwhile (FK) - or a real duplicate: re-check on the full path.
            hierarchy_cache.clear()
            if instance_existing(attrs["sop_instance_uid"]):
                raise
    instance_id, series_id, study_id, patient_id = _index_upsert_full(
        attrs=attrs, header=header, relative=relative, checksum=checksum, origin=origin,
        update_attributes=update_attributes, replace_id=replace_id,
    )
    hierarchy_cache.put(attrs["series_instance_uid"], (series_id, study_id, patient_id, _attrs_key(attrs)))
    return instance_id


# --- Fast path: prepared SQL ---------------------------------------------------------
# A modality sends a series instance after instance, so the usual ingest is "one
# more instance in a known series": one INSERT and three counter UPDATEs.  Built
# through the ORM those four statements cost ~1.5 ms of CPU per instance (query
# compilation); as SQL text built once from the models' metadata, ~0.2 ms.
_sql: dict[object, str] = {}


def _column(model, name: str) -> str:
    return connection.ops.quote_name(model._meta.get_field(name).column)


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _statement(key: object, build) -> str:
    sql = _sql.get(key)
    if sql is None:
        sql = _sql[key] = build()
    return sql


def instance_existing(sop_instance_uid: str) -> dict | None:
    """The archived row of *sop_instance_uid* (id, file_path, file_size, series_id), if any."""
    sql = _statement("existing", lambda: (
        f"SELECT {_column(Instance, 'id')}, {_column(Instance, 'file_path')}, {_column(Instance, 'file_size')}, "
        f"{_column(Instance, 'series')} FROM {_table(Instance)} WHERE {_column(Instance, 'sop_instance_uid')} = %s"
    ))
    with connection.cursor() as cursor:
        cursor.execute(sql, [sop_instance_uid])
        row = cursor.fetchone()
    if row is None:
        return None
    return {"id": row[0], "file_path": row[1], "file_size": row[2], "series_id": row[3]}


def _fast_insert(series_id: int, study_id: int, patient_id: int, series_uid: str, size: int, fields: dict) -> int:
    """INSERT the instance and bump the counts of its (cached) series, study and patient."""
    fields = {"series": series_id, "received_at": timezone.now(), **fields}
    names = tuple(fields)
    insert = _statement(("insert", names), lambda: (
        f"INSERT INTO {_table(Instance)} ({', '.join(_column(Instance, name) for name in names)}) "
        f"VALUES ({', '.join(['%s'] * len(names))}) RETURNING {_column(Instance, 'id')}"
    ))
    fields["received_at"] = connection.ops.adapt_datetimefield_value(fields["received_at"])

    def bump(model, counter: str, extra: str = "") -> str:
        column = _column(model, counter)
        return f"UPDATE {_table(model)} SET {column} = {column} + 1{extra} WHERE {_column(model, 'id')} = %s"

    series_sql = _statement("series+1", lambda: bump(Series, "number_of_series_related_instances")
                            + f" AND {_column(Series, 'series_instance_uid')} = %s")
    size_column = _column(Study, "size_bytes")
    study_sql = _statement("study+1", lambda: bump(Study, "number_of_study_related_instances",
                                                   f", {size_column} = {size_column} + %s"))
    patient_sql = _statement("patient+1", lambda: bump(Patient, "number_of_patient_related_instances"))
    with connection.cursor() as cursor:
        cursor.execute(series_sql, [series_id, series_uid])
        if cursor.rowcount != 1:
            raise _StaleHierarchy(series_uid)
        cursor.execute(insert, list(fields.values()))
        instance_id = cursor.fetchone()[0]
        cursor.execute(study_sql, [size, study_id])
        cursor.execute(patient_sql, [patient_id])
    return instance_id


def _instance_fields(attrs: dict, header: Header, relative: str, checksum: str, origin: IngestOrigin) -> dict:
    return {
        "sop_class_uid": attrs["sop_class_uid"],
        "sop_instance_uid": attrs["sop_instance_uid"],
        "transfer_syntax_uid": header.transfer_syntax_uid,
        "original_transfer_syntax_uid": header.transfer_syntax_uid,
        "file_path": relative,
        "file_size": header.size,
        "checksum": checksum,
        "source_aet": cut(origin.calling_aet, 16),
        **attrs["instance"],
    }


class _StaleHierarchy(Exception):
    """The cached series row is gone or is another series now."""


def _counts_add(series_id: int, study_id: int, patient_id: int, size: int, *, series_created: bool,
                study_created: bool) -> None:
    Series.objects.filter(pk=series_id).update(
        number_of_series_related_instances=F("number_of_series_related_instances") + 1
    )
    study_updates = {
        "number_of_study_related_instances": F("number_of_study_related_instances") + 1,
        "size_bytes": F("size_bytes") + size,
    }
    patient_updates = {"number_of_patient_related_instances": F("number_of_patient_related_instances") + 1}
    if series_created:
        study_updates["number_of_study_related_series"] = F("number_of_study_related_series") + 1
        patient_updates["number_of_patient_related_series"] = F("number_of_patient_related_series") + 1
        study_updates["modalities_in_study"] = _modalities(study_id)
    if study_created:
        patient_updates["number_of_patient_related_studies"] = F("number_of_patient_related_studies") + 1
    Study.objects.filter(pk=study_id).update(**study_updates)
    Patient.objects.filter(pk=patient_id).update(**patient_updates)


def _index_upsert_full(
    *,
    attrs: dict,
    header: Header,
    relative: str,
    checksum: str,
    origin: IngestOrigin,
    update_attributes: bool,
    replace_id: int | None,
) -> tuple[int, int, int, int]:
    with transaction.atomic():
        if replace_id is not None:
            old = Instance.objects.select_related("series__study").get(pk=replace_id)
            _instance_detach(old)
        study = Study.objects.select_related("patient").filter(study_instance_uid=attrs["study_instance_uid"]).first()
        study_created = study is None
        if study is None:
            patient, patient_created = Patient.objects.get_or_create(
                patient_id=attrs["patient"]["patient_id"],
                issuer_of_patient_id=attrs["patient"]["issuer_of_patient_id"],
                defaults=attrs["patient"],
            )
            if not patient_created and update_attributes:
                _update(patient, _changed(patient, attrs["patient"]))
            # get_or_create: another association may be creating the same study right
            # now (PostgreSQL raises on the unique index, then the row is visible).
            study, study_created = Study.objects.get_or_create(
                study_instance_uid=attrs["study_instance_uid"], defaults={"patient": patient, **attrs["study"]}
            )
            if not study_created:
                patient = study.patient
        else:
            patient = study.patient
            if update_attributes:
                if patient.patient_id == attrs["patient"]["patient_id"]:
                    _update(patient, _changed(patient, attrs["patient"]))
                _update(study, _changed(study, attrs["study"]))

        series, series_created = Series.objects.get_or_create(
            series_instance_uid=attrs["series_instance_uid"],
            defaults={
                "study": study,
                "source_aet": cut(origin.calling_aet, 16),
                "source_address": cut(origin.peer_address, 64),
                **attrs["series"],
            },
        )
        if series.study_id != study.pk:
            raise DatasetMismatch(
                f"Series {attrs['series_instance_uid']} already belongs to another study"
            )

        instance = Instance.objects.create(
            series=series, **_instance_fields(attrs, header, relative, checksum, origin)
        )
        _counts_add(series.pk, study.pk, patient.pk, header.size, series_created=series_created,
                    study_created=study_created)
        return instance.pk, series.pk, study.pk, patient.pk


def _update(obj: Patient | Study, changes: dict) -> None:
    if changes:
        type(obj).objects.filter(pk=obj.pk).update(**changes)
        for key, value in changes.items():
            setattr(obj, key, value)


def _modalities(study_id: int) -> str:
    values = Series.objects.filter(study_id=study_id).exclude(modality="").values_list("modality", flat=True)
    return "\\".join(sorted(set(values)))[:128]


def _instance_detach(instance: Instance) -> None:
    """Delete an instance row and keep every count above it right (same transaction)."""
    series = instance.series
    study = series.study
    instance.delete()
    Series.objects.filter(pk=series.pk).update(
        number_of_series_related_instances=F("number_of_series_related_instances") - 1
    )
    Study.objects.filter(pk=study.pk).update(
        number_of_study_related_instances=F("number_of_study_related_instances") - 1,
        size_bytes=F("size_bytes") - instance.file_size,
    )
    Patient.objects.filter(pk=study.patient_id).update(
        number_of_patient_related_instances=F("number_of_patient_related_instances") - 1
    )

"""instance_ingest: the one write path (files + index), tested exhaustively."""

from __future__ import annotations

import datetime
import hashlib

import pytest
from pydicom.uid import generate_uid

from pacs import storage
from pacs.charsets import TextDecoder
from pacs.exceptions import CannotUnderstand, DatasetMismatch, DuplicateRejected, InvalidUID, OutOfResources
from pacs.models import Instance, Patient, Series, Study
from pacs.services.ingest import IngestOrigin, instance_ingest
from pacs.services.ingest.parse import attributes_extract, header_read
from tests import dicom_factories as f

pytestmark = pytest.mark.django_db


def _archived_files(root):
    return sorted(p for p in root.rglob("*.dcm"))


def test_ingest_stores_received_bytes_unchanged_and_indexes(archive_config, storage_root):
    data = f.encode(f.ct_dataset(patient_name="DOE^JANE", patient_id="X1"))
    result = instance_ingest(source=data, origin=IngestOrigin(source="c-store", calling_aet="MOD1",
                                                              peer_address="10.0.0.9"))
    assert result.status == "stored"
    instance = Instance.objects.select_related("series__study__patient").get()
    path = storage_root / instance.file_path
    assert path.read_bytes() == data
    assert instance.checksum == hashlib.sha256(data).hexdigest()
    assert instance.file_path == f"{result.study_instance_uid}/{result.series_instance_uid}/{result.sop_instance_uid}.dcm"
    assert (instance.rows, instance.columns, instance.transfer_syntax_uid) == (32, 32, f.EXPLICIT_LE)
    series = instance.series
    assert (series.modality, series.source_aet, series.source_address) == ("CT", "MOD1", "10.0.0.9")
    study = series.study
    assert study.study_date.isoformat() == "2026-11-21" and study.study_time.hour == 10
    assert (study.accession_number, study.modalities_in_study) == ("ACC001", "CT")
    assert study.patient.patient_name == "DOE^JANE" and study.patient.patient_id == "X1"
    assert not list((storage_root / ".tmp").iterdir())


def test_counts_stay_right_across_series_and_studies(archive_config):
    study_uid = generate_uid()
    ct_series, sr_series = generate_uid(), generate_uid()
    for i in range(3):
        instance_ingest(source=f.encode(f.ct_dataset(study_uid=study_uid, series_uid=ct_series, instance_number=i)))
    instance_ingest(source=f.encode(f.ct_dataset(study_uid=study_uid, series_uid=sr_series, modality="OT")))
    instance_ingest(source=f.encode(f.ct_dataset()))  # second study, same patient
    study = Study.objects.get(study_instance_uid=study_uid)
    assert study.number_of_study_related_series == 2
    assert study.number_of_study_related_instances == 4
    assert study.modalities_in_study == "CT\\OT"
    assert study.size_bytes == sum(i.file_size for i in Instance.objects.filter(series__study=study))
    assert Series.objects.get(series_instance_uid=ct_series).number_of_series_related_instances == 3
    patient = Patient.objects.get()
    assert (patient.number_of_patient_related_studies, patient.number_of_patient_related_series,
            patient.number_of_patient_related_instances) == (2, 3, 5)


def test_duplicate_keep_first_answers_success_and_keeps_first_bytes(archive_config, storage_root):
    archive_config(duplicate_policy="keep-first")
    ds = f.ct_dataset()
    first = f.encode(ds)
    instance_ingest(source=first)
    ds.StudyDescription = "CHANGED"
    result = instance_ingest(source=f.encode(ds))
    assert result.status == "duplicate"
    assert Instance.objects.count() == 1
    assert (storage_root / Instance.objects.get().file_path).read_bytes() == first
    assert Study.objects.get().number_of_study_related_instances == 1


def test_duplicate_replace_swaps_file_and_keeps_counts(archive_config, storage_root):
    archive_config(duplicate_policy="replace")
    ds = f.ct_dataset()
    instance_ingest(source=f.encode(ds))
    ds.InstanceNumber = 7
    second = f.encode(ds, f.IMPLICIT_LE)
    result = instance_ingest(source=second)
    assert result.status == "replaced"
    instance = Instance.objects.get()
    assert instance.instance_number == 7 and instance.transfer_syntax_uid == f.IMPLICIT_LE
    assert (storage_root / instance.file_path).read_bytes() == second
    study = Study.objects.get()
    assert study.number_of_study_related_instances == 1 and study.size_bytes == len(second)
    assert len(_archived_files(storage_root)) == 1


def test_duplicate_reject_raises_0111_and_changes_nothing(archive_config, storage_root):
    archive_config(duplicate_policy="reject")
    ds = f.ct_dataset()
    first = f.encode(ds)
    instance_ingest(source=first)
    with pytest.raises(DuplicateRejected) as info:
        instance_ingest(source=f.encode(ds, f.IMPLICIT_LE))
    assert info.value.dicom_status == 0x0111
    assert (storage_root / Instance.objects.get().file_path).read_bytes() == first


@pytest.mark.parametrize("keyword", ["SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "SOPClassUID"])
def test_missing_uid_is_0xa900_and_leaves_nothing(archive_config, storage_root, keyword):
    ds = f.ct_dataset()
    delattr(ds, keyword)
    data = f.encode(ds)
    with pytest.raises(DatasetMismatch) as info:
        instance_ingest(source=data)
    assert info.value.dicom_status == 0xA900 and keyword in info.value.message
    assert not Instance.objects.exists() and not _archived_files(storage_root)


@pytest.mark.parametrize("bad", ["1.2/../../etc", "../1.2.3", "1.2\x00.3", "1." + "2" * 70, "1.2.a", "1..2"])
def test_uid_with_path_characters_never_reaches_disk(archive_config, storage_root, bad):
    ds = f.ct_dataset()
    ds.SeriesInstanceUID = bad
    with pytest.raises(InvalidUID):
        instance_ingest(source=f.encode(ds))
    assert not any(storage_root.parent.rglob("etc")) and not _archived_files(storage_root)
    assert not Series.objects.exists()


def test_truncated_pixel_data_is_0xc000(archive_config, storage_root):
    data = f.encode(f.ct_dataset(size=64))
    with pytest.raises(CannotUnderstand) as info:
        instance_ingest(source=data[:-500])
    assert info.value.dicom_status == 0xC000 and "Truncated" in info.value.message
    assert not Instance.objects.exists() and not _archived_files(storage_root)


def test_truncated_encapsulated_pixel_data_is_0xc000(archive_config):
    data = f.encode(f.ct_dataset(size=64), f.RLE)
    with pytest.raises(CannotUnderstand):
        instance_ingest(source=data[:-20])


def test_garbage_is_0xc000(archive_config):
    with pytest.raises(CannotUnderstand):
        instance_ingest(source=b"\x00" * 128 + b"DICM" + b"\xff" * 300)
    with pytest.raises((CannotUnderstand, DatasetMismatch)):
        instance_ingest(source=b"this is not dicom at all")


def test_image_without_pixel_data_is_0xa900(archive_config):
    ds = f.ct_dataset()
    del ds.PixelData
    with pytest.raises(DatasetMismatch, match="Pixel Data"):
        instance_ingest(source=f.encode(ds))


def test_free_space_floor_refuses_with_0xa700(archive_config, storage_root):
    archive_config(min_free_mb=10**9)
    with pytest.raises(OutOfResources) as info:
        instance_ingest(source=f.encode(f.ct_dataset()))
    assert info.value.dicom_status == 0xA700
    assert not Instance.objects.exists() and not _archived_files(storage_root)


def test_index_failure_removes_the_new_file(archive_config, storage_root):
    # A series UID already used by another study is an index conflict: file must go.
    series_uid = generate_uid()
    instance_ingest(source=f.encode(f.ct_dataset(series_uid=series_uid)))
    with pytest.raises(DatasetMismatch):
        instance_ingest(source=f.encode(f.ct_dataset(series_uid=series_uid)))
    assert Instance.objects.count() == 1 and len(_archived_files(storage_root)) == 1


def test_newer_instance_updates_patient_and_study_attributes(archive_config):
    study_uid = generate_uid()
    instance_ingest(source=f.encode(f.ct_dataset(study_uid=study_uid, patient_name="OLD^NAME")))
    instance_ingest(source=f.encode(f.ct_dataset(study_uid=study_uid, patient_name="NEW^NAME",
                                                 StudyDescription="CT CHEST")))
    study = Study.objects.select_related("patient").get()
    assert study.patient.patient_name == "NEW^NAME" and study.study_description == "CT CHEST"


def test_attribute_updates_can_be_turned_off(archive_config):
    archive_config(update_attributes=False)
    study_uid = generate_uid()
    instance_ingest(source=f.encode(f.ct_dataset(study_uid=study_uid, patient_name="OLD^NAME")))
    instance_ingest(source=f.encode(f.ct_dataset(study_uid=study_uid, patient_name="NEW^NAME")))
    assert Patient.objects.get().patient_name == "OLD^NAME"


def test_path_template_is_configurable_and_sanitised(archive_config, storage_root):
    archive_config(path_template="{PatientID}/{StudyDate}/{Modality}/{SOPInstanceUID}.dcm")
    result = instance_ingest(source=f.encode(f.ct_dataset(patient_id="../../evil id")))
    instance = Instance.objects.get()
    assert instance.file_path == f"_.._evil_id/20261121/CT/{result.sop_instance_uid}.dcm"
    assert (storage_root / instance.file_path).exists()


def test_path_template_validation_rejects_unsafe_templates(archive_config):
    from django.core.exceptions import ValidationError

    for template in ("{StudyInstanceUID}/x.dcm", "../{SOPInstanceUID}", "{Nope}/{SOPInstanceUID}"):
        with pytest.raises(ValidationError):
            archive_config(path_template=template)


def test_bare_dataset_without_file_meta_is_accepted(archive_config, tmp_path):
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    ds = f.ct_dataset()
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, True
    write_dataset(buffer, ds)
    path = tmp_path / "bare.dcm"
    path.write_bytes(buffer.getvalue())
    result = instance_ingest(source=path)
    assert result.status == "stored" and Instance.objects.get().sop_instance_uid == ds.SOPInstanceUID


@pytest.mark.parametrize("transfer_syntax", f.UNCOMPRESSED + f.COMPRESSED + f.VIDEO)
def test_every_transfer_syntax_is_stored_as_received(archive_config, storage_root, transfer_syntax):
    data = f.encode(f.ct_dataset(), transfer_syntax)
    result = instance_ingest(source=data)
    instance = Instance.objects.get()
    assert instance.transfer_syntax_uid == transfer_syntax == result.transfer_syntax_uid
    assert (storage_root / instance.file_path).read_bytes() == data


def test_relative_path_build_refuses_unvalidated_uids():
    with pytest.raises(InvalidUID):
        storage.relative_path_build("{SOPInstanceUID}", {"SOPInstanceUID": "../x"})


def test_hot_path_query_count(archive_config, django_assert_max_num_queries):
    study_uid, series_uid = generate_uid(), generate_uid()
    instance_ingest(source=f.encode(f.ct_dataset(study_uid=study_uid, series_uid=series_uid)))
    data = f.encode(f.ct_dataset(study_uid=study_uid, series_uid=series_uid, instance_number=2))
    with django_assert_max_num_queries(10):
        instance_ingest(source=data)


def _refusals():
    """(policy, make second dataset bytes from the first dataset) pairs that ingest refuses or skips."""
    def same(ds):
        return f.encode(ds)

    def bad_uid(ds):
        ds.SOPInstanceUID = "1.2/../x"
        return f.encode(ds)

    def truncated(ds):
        ds.SOPInstanceUID = generate_uid()
        return f.encode(ds)[:-300]

    return [("keep-first", same), ("reject", same), ("keep-first", bad_uid), ("keep-first", truncated)]


@pytest.mark.parametrize(("policy", "second"), _refusals(), ids=["duplicate-kept", "duplicate-rejected",
                                                                 "bad-uid", "truncated"])
def test_refused_instance_leaves_no_temp_file(archive_config, storage_root, policy, second):
    """The received bytes are written while the header is parsed; a refusal removes that write."""
    archive_config(duplicate_policy=policy)
    ds = f.ct_dataset()
    first = f.encode(ds)
    instance_ingest(source=first)
    try:
        instance_ingest(source=second(ds))
    except (DuplicateRejected, InvalidUID, CannotUnderstand):
        pass
    assert not list((storage_root / ".tmp").iterdir())
    assert [p.read_bytes() for p in _archived_files(storage_root)] == [first]
    assert Instance.objects.count() == 1


def test_temp_copy_checksums_the_copy_and_leaves_nothing_when_the_source_fails(storage_root, tmp_path):
    source = tmp_path / "in.dcm"
    source.write_bytes(f.encode(f.ct_dataset()))
    temp, digest, size = storage.temp_copy(source)
    assert temp.read_bytes() == source.read_bytes() and digest == hashlib.sha256(source.read_bytes()).hexdigest()
    assert size == source.stat().st_size
    temp.unlink()
    with pytest.raises(OSError):
        storage.temp_copy(tmp_path)  # a folder: reading it fails after the temp file exists
    assert not list((storage_root / ".tmp").iterdir())


@pytest.mark.parametrize("syntax", [f.EXPLICIT_LE, f.IMPLICIT_LE, f.EXPLICIT_BE, f.DEFLATED])
def test_indexed_values_read_from_the_received_bytes_in_every_uncompressed_syntax(syntax):
    ds = f.ct_dataset(size=16, instance_number=7, modality="MR", PatientSex="F", BodyPartExamined="HEAD",
                      NumberOfFrames=3, SeriesNumber="  12", StudyTime="101500.25")
    ds.Modality = ["MR", "CT"]  # VM 2 where one value is expected: the first is indexed
    header = header_read(f.encode(ds, syntax))
    attrs = attributes_extract(header.ds, TextDecoder.for_dataset(header.ds))
    assert attrs["sop_instance_uid"] == ds.SOPInstanceUID
    assert attrs["instance"] == {"instance_number": 7, "rows": 16, "columns": 16, "number_of_frames": 3,
                                 "bits_allocated": 16, "photometric_interpretation": "MONOCHROME2"}
    assert attrs["series"]["modality"] == "MR" and attrs["series"]["series_number"] == 12
    assert attrs["series"]["body_part_examined"] == "HEAD" and attrs["patient"]["patient_sex"] == "F"
    assert attrs["study"]["study_date"] == datetime.date(2026, 11, 21)
    assert attrs["study"]["study_time"] == datetime.time(10, 15, 0, 250000)


def test_values_pydicom_already_converted_or_with_an_unexpected_vr_are_still_indexed():
    data = f.encode(f.ct_dataset(size=16))
    rows = b"\x28\x00\x10\x00US\x02\x00\x10\x00"
    assert data.count(rows) == 1
    data = data.replace(rows, b"\x28\x00\x10\x00UN\x00\x00\x02\x00\x00\x00\x10\x00")  # Rows sent as UN
    header = header_read(data)
    header.ds.InstanceNumber = 5  # a converted DataElement, as a bare data set's header holds
    attrs = attributes_extract(header.ds, TextDecoder.for_dataset(header.ds))
    assert attrs["instance"]["rows"] == 16 and attrs["instance"]["instance_number"] == 5


def test_a_multi_valued_uid_is_refused_not_cut():
    ds = f.ct_dataset()
    ds.SOPInstanceUID = ["1.2.3", "1.2.4"]
    header = header_read(f.encode(ds))
    with pytest.raises(InvalidUID):
        attributes_extract(header.ds, TextDecoder.for_dataset(header.ds))

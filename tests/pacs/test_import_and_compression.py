"""importdicom (folders, zips, summary) and background compression of the archive."""

from __future__ import annotations

import zipfile
from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command
from pydicom import dcmread

from pacs.models import Instance, Study
from pacs.services.compression import instance_compress
from pacs.services.ingest import instance_ingest
from tests import dicom_factories as f

pytestmark = pytest.mark.django_db


def test_importdicom_folder_zip_and_summary(archive_config, tmp_path):
    files = f.study_files(tmp_path / "in" / "a" / "b", count=3)
    zipped = f.study_files(tmp_path / "z", count=2, transfer_syntax=f.RLE)
    with zipfile.ZipFile(tmp_path / "in" / "study.zip", "w") as archive:
        for path in zipped:
            archive.write(path, f"DICOM/{path.name}")
    (tmp_path / "in" / "README.txt").write_text("not dicom")
    out = StringIO()
    call_command("importdicom", str(tmp_path / "in"), str(files[0]), "--no-progress", stdout=out)
    text = out.getvalue()
    assert "Imported 7 file(s): 5 stored, 1 duplicate, 1 rejected." in text
    assert "README.txt" in text
    assert Instance.objects.count() == 5 and Study.objects.count() == 2


def test_importdicom_missing_path_is_a_clear_error(tmp_path):
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="No such file"):
        call_command("importdicom", str(tmp_path / "nope"))


@pytest.mark.parametrize(
    ("compression", "syntax"),
    [("rle", f.RLE), ("jpeg-ls-lossless", f.JPEG_LS_LOSSLESS), ("j2k-lossless", f.J2K_LOSSLESS)],
)
def test_lossless_compression_round_trips_and_replaces_file(archive_config, storage_root, compression, syntax):
    ds = f.ct_dataset(size=64)
    result = instance_ingest(source=f.encode(ds))
    before = Instance.objects.get()
    assert instance_compress(instance_id=result.instance_id, compression=compression) == "compressed"
    instance = Instance.objects.get()
    assert instance.transfer_syntax_uid == syntax
    assert instance.original_transfer_syntax_uid == f.EXPLICIT_LE
    stored = dcmread(storage_root / instance.file_path)
    assert stored.file_meta.TransferSyntaxUID == syntax
    assert stored.SOPInstanceUID == ds.SOPInstanceUID == instance.sop_instance_uid
    assert np.array_equal(stored.pixel_array, ds.pixel_array)
    assert Study.objects.get().size_bytes == instance.file_size != before.file_size


def test_lossy_compression(archive_config, storage_root):
    result = instance_ingest(source=f.encode(f.ct_dataset(size=64)))
    assert instance_compress(instance_id=result.instance_id, compression="j2k-lossy") == "compressed"
    assert Instance.objects.get().transfer_syntax_uid == f.J2K


def test_compressed_data_is_left_alone(archive_config, storage_root):
    data = f.encode(f.ct_dataset(), f.J2K_LOSSLESS)
    result = instance_ingest(source=data)
    assert instance_compress(instance_id=result.instance_id, compression="rle") == "already-compressed"
    assert (storage_root / Instance.objects.get().file_path).read_bytes() == data


def test_ingest_queues_compression_when_enabled(archive_config):
    from django_q.models import OrmQ

    archive_config(compression="rle")
    instance_ingest(source=f.encode(f.ct_dataset()))
    instance_ingest(source=f.encode(f.ct_dataset(), f.J2K_LOSSLESS))  # already compressed: not queued
    assert OrmQ.objects.count() == 1

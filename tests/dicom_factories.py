"""Generated DICOM test data (never downloaded).

``ct_dataset()`` builds a valid CT Image with small pixels; ``encode()`` turns a
dataset into Part 10 bytes in any transfer syntax, compressed ones included:
pydicom's encoders (RLE, JPEG-LS, JPEG 2000), Pillow (JPEG Baseline) and
DCMTK's ``dcmcjpeg`` (JPEG Extended/Lossless) where pydicom has none; video
and HTJ2K syntaxes get a well-formed encapsulated stream the archive stores as is.
"""

from __future__ import annotations

import io
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from pydicom import dcmread, dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    PYDICOM_IMPLEMENTATION_UID,
    SecondaryCaptureImageStorage,
    UID,
    generate_uid,
)

EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
DEFLATED = "1.2.840.10008.1.2.1.99"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"
JPEG_LOSSLESS = "1.2.840.10008.1.2.4.57"
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"
JPEG_LS_LOSSLESS = "1.2.840.10008.1.2.4.80"
JPEG_LS_NEAR = "1.2.840.10008.1.2.4.81"
J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"
J2K = "1.2.840.10008.1.2.4.91"
HTJ2K_LOSSLESS = "1.2.840.10008.1.2.4.201"
HTJ2K = "1.2.840.10008.1.2.4.203"
RLE = "1.2.840.10008.1.2.5"
MPEG2 = "1.2.840.10008.1.2.4.100"
MPEG4 = "1.2.840.10008.1.2.4.102"
HEVC = "1.2.840.10008.1.2.4.107"

UNCOMPRESSED = [EXPLICIT_LE, IMPLICIT_LE, EXPLICIT_BE, DEFLATED]
COMPRESSED = [
    JPEG_BASELINE, JPEG_EXTENDED, JPEG_LOSSLESS, JPEG_LOSSLESS_SV1, JPEG_LS_LOSSLESS, JPEG_LS_NEAR,
    J2K_LOSSLESS, J2K, HTJ2K_LOSSLESS, HTJ2K, RLE,
]
VIDEO = [MPEG2, MPEG4, HEVC]
# dcmcjpeg options producing each JPEG process
_DCMCJPEG = {JPEG_BASELINE: "+eb", JPEG_EXTENDED: "+ee", JPEG_LOSSLESS: "+el", JPEG_LOSSLESS_SV1: "+e1"}


def ct_dataset(
    *,
    patient_id: str = "P001",
    patient_name: str = "DOE^JOHN",
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    size: int = 32,
    instance_number: int = 1,
    modality: str = "CT",
    bits: int = 16,
    **extra: object,
) -> Dataset:
    """A small, valid CT (or other modality) image with a gradient + instance-dependent pixels."""
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage if modality == "CT" else SecondaryCaptureImageStorage
    ds.SOPInstanceUID = sop_uid or generate_uid()
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.PatientID = patient_id
    ds.PatientName = patient_name
    ds.PatientBirthDate = "19800101"
    ds.PatientSex = "M"
    ds.StudyDate = "20261121"
    ds.StudyTime = "101500"
    ds.StudyDescription = "CT HEAD"
    ds.AccessionNumber = "ACC001"
    ds.StudyID = "1"
    ds.ReferringPhysicianName = "REF^DOC"
    ds.Modality = modality
    ds.SeriesNumber = 1
    ds.SeriesDescription = "AXIAL"
    ds.InstanceNumber = instance_number
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = size
    ds.Columns = size
    ds.BitsAllocated = bits
    ds.BitsStored = 12 if bits == 16 else 8
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    if bits == 16:
        ds.RescaleIntercept = -1024
        ds.RescaleSlope = 1
        ds.WindowCenter = 40
        ds.WindowWidth = 400
    yy, xx = np.mgrid[0:size, 0:size]
    maximum = (1 << ds.BitsStored) - 1
    pixels = ((xx * 37 + yy * 11 + instance_number * 101) % (maximum + 1)).astype(np.uint16 if bits == 16 else np.uint8)
    ds.PixelData = pixels.tobytes()
    for key, value in extra.items():
        setattr(ds, key, value)
    return _with_meta(ds, EXPLICIT_LE)


def _with_meta(ds: Dataset, transfer_syntax: str) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.get("SOPClassUID", SecondaryCaptureImageStorage)
    meta.MediaStorageSOPInstanceUID = ds.get("SOPInstanceUID", "1.2.3.4")
    meta.TransferSyntaxUID = UID(transfer_syntax)
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    return ds


def _save(ds: Dataset) -> bytes:
    out = io.BytesIO()
    if ds.file_meta.TransferSyntaxUID == EXPLICIT_BE:
        if "PixelData" in ds and ds.get("BitsAllocated") == 16:
            ds.PixelData = np.frombuffer(ds.PixelData, "<u2").astype(">u2").tobytes()
        dcmwrite(out, ds, enforce_file_format=True, little_endian=False, implicit_vr=False)
    else:
        ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def encode(ds: Dataset, transfer_syntax: str = EXPLICIT_LE) -> bytes:
    """Part 10 bytes of *ds* in *transfer_syntax* (compressing the pixels when needed)."""
    ds = _copy(ds)
    if transfer_syntax in (EXPLICIT_LE, IMPLICIT_LE, EXPLICIT_BE, DEFLATED):
        return _save(_with_meta(ds, transfer_syntax))
    if transfer_syntax in (RLE, JPEG_LS_LOSSLESS, J2K_LOSSLESS):
        _with_meta(ds, EXPLICIT_LE)
        ds.compress(transfer_syntax)
        return _save(ds)
    if transfer_syntax == JPEG_LS_NEAR:
        _with_meta(ds, EXPLICIT_LE)
        ds.compress(transfer_syntax, jls_error=2)
        return _save(ds)
    if transfer_syntax == J2K:
        _with_meta(ds, EXPLICIT_LE)
        ds.compress(transfer_syntax, j2k_cr=[5])
        return _save(ds)
    if transfer_syntax in _DCMCJPEG:
        return _dcmcjpeg(ds, transfer_syntax)
    # HTJ2K and video: a syntactically valid encapsulated stream, stored as sent.
    _with_meta(ds, transfer_syntax)
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + bytes(64)])
    ds["PixelData"].VR = "OB"
    return _save(ds)


def _copy(ds: Dataset) -> Dataset:
    return dcmread(io.BytesIO(_save(_with_meta(Dataset(ds), EXPLICIT_LE))))


def _dcmcjpeg(ds: Dataset, transfer_syntax: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.dcm", Path(tmp) / "out.dcm"
        if transfer_syntax == JPEG_BASELINE and ds.BitsAllocated == 16:
            ds = _to_8bit(ds)
        src.write_bytes(_save(_with_meta(ds, EXPLICIT_LE)))
        subprocess.run(["dcmcjpeg", _DCMCJPEG[transfer_syntax], str(src), str(dst)], check=True, timeout=60,
                       capture_output=True)
        return dst.read_bytes()


def _to_8bit(ds: Dataset) -> Dataset:
    arr = (ds.pixel_array >> 4).astype(np.uint8)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = arr.tobytes()
    return ds


def write(ds: Dataset, path: Path, transfer_syntax: str = EXPLICIT_LE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode(ds, transfer_syntax))
    return path


def study_files(folder: Path, *, count: int = 3, transfer_syntax: str = EXPLICIT_LE, **kwargs) -> list[Path]:
    """*count* instances of one new study/series written to *folder*."""
    study_uid, series_uid = generate_uid(), generate_uid()
    return [
        write(
            ct_dataset(study_uid=study_uid, series_uid=series_uid, instance_number=i + 1, **kwargs),
            folder / f"IM{i + 1:04d}.dcm",
            transfer_syntax,
        )
        for i in range(count)
    ]


__all__ = [
    "ct_dataset", "encode", "write", "study_files", "ExplicitVRLittleEndian", "ImplicitVRLittleEndian",
]

"""pacs.services.transcode: every stored syntax to what a peer accepts, pixels checked."""

from __future__ import annotations

import io

import numpy as np
import pytest
from pydicom import dcmread

from pacs.services.transcode import (
    TranscodeError,
    can_transcode,
    dataset_encode,
    instance_transcode,
    transfer_syntax_choose,
)
from tests import dicom_factories as f

LOSSLESS = [f.JPEG_LOSSLESS, f.JPEG_LOSSLESS_SV1, f.JPEG_LS_LOSSLESS, f.J2K_LOSSLESS, f.RLE]
LOSSY = [f.JPEG_BASELINE, f.JPEG_EXTENDED, f.JPEG_LS_NEAR, f.J2K]


def _stored(transfer_syntax: str, **kwargs) -> bytes:
    return f.encode(f.ct_dataset(**kwargs), transfer_syntax)


def _reread(ds) -> object:
    """Encode and parse again, as a receiver would."""
    return dcmread(io.BytesIO(dataset_encode(ds)))


@pytest.mark.parametrize("source", LOSSLESS)
@pytest.mark.parametrize("target", [f.EXPLICIT_LE, f.IMPLICIT_LE])
def test_lossless_syntaxes_decode_to_the_original_pixels(source, target):
    original = f.ct_dataset(instance_number=3).pixel_array
    stored = _stored(source, instance_number=3)
    out = _reread(instance_transcode(stored, target))
    assert out.file_meta.TransferSyntaxUID == target
    assert out.SOPInstanceUID == dcmread(io.BytesIO(stored)).SOPInstanceUID
    assert np.array_equal(out.pixel_array, original)


@pytest.mark.parametrize("source", LOSSY)
def test_lossy_syntaxes_decode_to_the_stored_pixels(source):
    stored = _stored(source)
    expected = dcmread(io.BytesIO(stored)).pixel_array
    out = _reread(instance_transcode(stored, f.EXPLICIT_LE))
    assert out.file_meta.TransferSyntaxUID == f.EXPLICIT_LE
    assert np.array_equal(out.pixel_array, expected)


@pytest.mark.parametrize("target", [f.RLE, f.JPEG_LS_LOSSLESS, f.J2K_LOSSLESS])
def test_encoding_to_lossless_compressed_syntaxes(tmp_path, target):
    path = tmp_path / "in.dcm"
    path.write_bytes(_stored(f.J2K_LOSSLESS if target != f.J2K_LOSSLESS else f.RLE))
    out = _reread(instance_transcode(path, target))
    assert out.file_meta.TransferSyntaxUID == target
    assert out.SOPInstanceUID == dcmread(path).SOPInstanceUID
    assert np.array_equal(out.pixel_array, f.ct_dataset().pixel_array)


def test_big_endian_and_deflated_become_little_endian():
    original = f.ct_dataset().pixel_array
    for source in (f.EXPLICIT_BE, f.DEFLATED):
        out = _reread(instance_transcode(_stored(source), f.EXPLICIT_LE))
        assert np.array_equal(out.pixel_array, original), source


def test_colour_jpeg_baseline_becomes_rgb():
    ds = f.ct_dataset(bits=8, modality="OT")
    grey = ds.pixel_array
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.PixelData = np.dstack([grey, grey // 2, 255 - grey]).astype(np.uint8).tobytes()
    out = _reread(instance_transcode(f.encode(ds, f.JPEG_BASELINE), f.EXPLICIT_LE))
    assert out.PhotometricInterpretation == "RGB" and out.pixel_array.shape == (32, 32, 3)


def test_video_cannot_be_transcoded():
    assert not can_transcode(f.MPEG2, f.EXPLICIT_LE)
    with pytest.raises(TranscodeError) as info:
        instance_transcode(_stored(f.MPEG2), f.EXPLICIT_LE)
    assert info.value.http_status == 406


def test_garbage_is_a_transcode_error():
    with pytest.raises(TranscodeError, match="Cannot read"):
        instance_transcode(b"not dicom at all", f.EXPLICIT_LE)


def test_transfer_syntax_choice():
    # As stored when accepted, else uncompressed, else a lossless encoder.
    assert transfer_syntax_choose(f.J2K, [f.EXPLICIT_LE, f.J2K]) == f.J2K
    assert transfer_syntax_choose(f.J2K, [f.IMPLICIT_LE, f.EXPLICIT_LE]) == f.EXPLICIT_LE
    assert transfer_syntax_choose(f.JPEG_LS_LOSSLESS, [f.IMPLICIT_LE]) == f.IMPLICIT_LE
    assert transfer_syntax_choose(f.EXPLICIT_LE, [f.RLE]) == f.RLE
    assert transfer_syntax_choose(f.EXPLICIT_LE, [f.J2K_LOSSLESS, f.EXPLICIT_LE], preferred=f.J2K_LOSSLESS) == (
        f.J2K_LOSSLESS)
    assert transfer_syntax_choose(f.MPEG4, [f.EXPLICIT_LE]) is None
    assert transfer_syntax_choose(f.EXPLICIT_LE, [f.JPEG_BASELINE]) is None
    assert transfer_syntax_choose(f.JPEG_BASELINE, [f.EXPLICIT_LE], has_pixels=False) == f.EXPLICIT_LE

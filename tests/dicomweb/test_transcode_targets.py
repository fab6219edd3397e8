"""Transcoding to every transfer syntax WADO names, through a live server.

WADO-RS (``Accept: multipart/related; type="application/dicom";
transfer-syntax=...``, also through dicomweb-client) and WADO-URI
(``transferSyntax=``): the answer is decoded again with pydicom and compared
with the original - equal for lossless syntaxes, within a bound for lossy ones,
whose answers must carry the lossy compression record of PS3.3 C.7.6.1.1.5.
JPEG answers are also decoded by DCMTK (``dcmdjpeg``, ``dcmdjpls``): an
independent reader.  Frames in the compressed media types of PS3.18 8.7.3.5.
"""

from __future__ import annotations

import io
import subprocess

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.encaps import encapsulate
from pydicom.pixels import get_decoder
from pydicom.uid import generate_uid

from tests import dicom_factories as f
from tests.dicomweb.conftest import ingest, multipart_parts

pytestmark = pytest.mark.django_db(transaction=True)

LOSSLESS_TARGETS = [f.EXPLICIT_LE, f.IMPLICIT_LE, f.RLE, f.JPEG_LS_LOSSLESS, f.J2K_LOSSLESS, f.JPEG_LOSSLESS,
                    f.JPEG_LOSSLESS_SV1]
# target -> (minimum PSNR in dB, maximum absolute error) on the smooth test images below.
LOSSY_TARGETS = {f.JPEG_BASELINE: (40, 12), f.JPEG_EXTENDED: (55, 24), f.JPEG_LS_NEAR: (45, 2), f.J2K: (45, 40)}
LOSSY_METHOD = {f.JPEG_BASELINE: "ISO_10918_1", f.JPEG_EXTENDED: "ISO_10918_1", f.JPEG_LS_NEAR: "ISO_14495_1",
                f.J2K: "ISO_15444_1"}
DCMTK_DECODER = {f.JPEG_BASELINE: "dcmdjpeg", f.JPEG_EXTENDED: "dcmdjpeg", f.JPEG_LOSSLESS: "dcmdjpeg",
                 f.JPEG_LOSSLESS_SV1: "dcmdjpeg", f.JPEG_LS_LOSSLESS: "dcmdjpls", f.JPEG_LS_NEAR: "dcmdjpls"}
SIZE = 64
_YY, _XX = np.mgrid[0:SIZE, 0:SIZE]


def grey16(**kwargs):
    """12 bits stored in 16, a smooth ramp over the full range (CT-like)."""
    ds = f.ct_dataset(size=SIZE, **kwargs)
    ds.PixelData = ((_XX * 40 + _YY * 24) % 4096).astype(np.uint16).tobytes()
    return ds


def grey8(**kwargs):
    ds = f.ct_dataset(size=SIZE, bits=8, modality="OT", **kwargs)
    ds.PixelData = (_XX * 2 + _YY).astype(np.uint8).tobytes()
    return ds


def rgb8(**kwargs):
    ds = grey8(**kwargs)
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.PixelData = np.dstack([_XX * 4, _YY * 4, 255 - (_XX + _YY) * 2]).astype(np.uint8).tobytes()
    return ds


def signed16(**kwargs):
    ds = grey16(**kwargs)
    ds.PixelRepresentation = 1
    ds.PixelData = ((_XX * 40 + _YY * 24) % 4096 - 2048).astype(np.int16).tobytes()
    return ds


# The image each target is checked with: Baseline is 8-bit only, the rest get 12-bit CT.
SOURCE_FOR = {f.JPEG_BASELINE: grey8}


def _store(ds, transfer_syntax: str = f.EXPLICIT_LE):
    """Ingest *ds* in *transfer_syntax*; the factory's pydicom compression gives a new SOP Instance UID."""
    ds.SOPInstanceUID = ingest(ds, transfer_syntax).sop_instance_uid
    return ds


def _psnr(got: np.ndarray, expected: np.ndarray, peak: float) -> float:
    mse = float(np.mean((got.astype(np.float64) - expected.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(peak * peak / mse)


def _check_pixels(out, original, target: str) -> None:
    got, expected = out.pixel_array, original.pixel_array
    assert got.shape == expected.shape
    if target not in LOSSY_TARGETS:
        assert np.array_equal(got, expected)
        assert out.SOPInstanceUID == original.SOPInstanceUID
        assert out.get("LossyImageCompression", "00") != "01"
        return
    min_psnr, max_error = LOSSY_TARGETS[target]
    peak = (1 << int(original.BitsStored)) - 1
    assert _psnr(got, expected, peak) >= min_psnr
    assert np.abs(got.astype(np.int64) - expected.astype(np.int64)).max() <= max_error
    # PS3.3 C.7.6.1.1.5: a lossy compressed image is a derived image with a new UID.
    assert out.LossyImageCompression == "01"
    assert out.LossyImageCompressionMethod == LOSSY_METHOD[target]
    assert float(out.LossyImageCompressionRatio) > 1
    assert out.ImageType[0] == "DERIVED"
    assert out.SOPInstanceUID != original.SOPInstanceUID
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    source = out.SourceImageSequence[0]
    assert source.ReferencedSOPInstanceUID == original.SOPInstanceUID
    assert source.PurposeOfReferenceCodeSequence[0].CodeValue == "121320"
    assert out.DerivationCodeSequence[0].CodeValue == "113040"


def _instance_url(http, ds) -> str:
    return http.url(f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
                    f"/instances/{ds.SOPInstanceUID}")


def _accept(*syntaxes: str) -> str:
    return ", ".join(f'multipart/related; type="application/dicom"; transfer-syntax={ts}' for ts in syntaxes)


def _wado_uri(http, ds, **params):
    query = {"requestType": "WADO", "studyUID": ds.StudyInstanceUID, "seriesUID": ds.SeriesInstanceUID,
             "objectUID": ds.SOPInstanceUID, "contentType": "application/dicom", **params}
    return http.get(http.url("/wado"), params=query)


@pytest.mark.parametrize("target", [*LOSSLESS_TARGETS, *LOSSY_TARGETS])
def test_wado_rs_retrieves_in_every_target_syntax(http, archive_config, target):
    original = SOURCE_FOR.get(target, grey16)()
    _store(original, f.J2K_LOSSLESS if target != f.J2K_LOSSLESS else f.RLE)
    response = http.get(_instance_url(http, original), headers={"Accept": _accept(target)})
    assert response.status_code == 200, response.text
    assert f"transfer-syntax={target}" in response.headers["Content-Type"]
    (headers, data), = multipart_parts(response)
    assert headers["content-type"] == f"application/dicom; transfer-syntax={target}"
    out = dcmread(io.BytesIO(data))
    assert out.file_meta.TransferSyntaxUID == target
    _check_pixels(out, original, target)
    if target in LOSSY_TARGETS:  # asking again gives the same derived instance, not a near-duplicate
        again = dcmread(io.BytesIO(multipart_parts(http.get(_instance_url(http, original),
                                                            headers={"Accept": _accept(target)}))[0][1]))
        assert again.SOPInstanceUID == out.SOPInstanceUID


@pytest.mark.parametrize("target", [*LOSSLESS_TARGETS, *LOSSY_TARGETS])
def test_wado_uri_transfer_syntax_for_every_target(http, archive_config, target, tmp_path):
    original = SOURCE_FOR.get(target, grey16)()
    _store(original, f.EXPLICIT_LE if target != f.EXPLICIT_LE else f.JPEG_LS_LOSSLESS)
    response = _wado_uri(http, original, transferSyntax=target)
    assert response.status_code == 200, response.text
    out = dcmread(io.BytesIO(response.content))
    assert out.file_meta.TransferSyntaxUID == target
    _check_pixels(out, original, target)
    if target in DCMTK_DECODER:
        # An independent reader: DCMTK decodes the stream to the same pixels (within IDCT rounding).
        (tmp_path / "in.dcm").write_bytes(response.content)
        subprocess.run([DCMTK_DECODER[target], str(tmp_path / "in.dcm"), str(tmp_path / "out.dcm")],
                       check=True, timeout=60, capture_output=True)
        dcmtk = dcmread(tmp_path / "out.dcm").pixel_array.astype(np.int64)
        assert np.abs(dcmtk - out.pixel_array.astype(np.int64)).max() <= (0 if target not in LOSSY_TARGETS else 2)


def test_dicomweb_client_retrieves_jpeg_syntaxes_of_colour_and_signed_images(dw_client, archive_config):
    colour, signed = rgb8(), signed16()
    _store(colour)
    _store(signed)
    got = dw_client.retrieve_instance(colour.StudyInstanceUID, colour.SeriesInstanceUID, colour.SOPInstanceUID,
                                      media_types=(("application/dicom", f.JPEG_BASELINE),))
    # PS3.5 8.2.1: lossy colour JPEG is YCbCr 4:2:2, labelled YBR_FULL_422.
    assert got.file_meta.TransferSyntaxUID == f.JPEG_BASELINE and got.PhotometricInterpretation == "YBR_FULL_422"
    _check_pixels(got, colour, f.JPEG_BASELINE)
    lossless = dw_client.retrieve_instance(colour.StudyInstanceUID, colour.SeriesInstanceUID,
                                           colour.SOPInstanceUID, media_types=(("application/dicom", f.JPEG_LOSSLESS_SV1),))
    assert lossless.PhotometricInterpretation == "RGB"  # no colour transform in lossless JPEG
    _check_pixels(lossless, colour, f.JPEG_LOSSLESS_SV1)
    for target in (f.JPEG_LOSSLESS, f.JPEG_LOSSLESS_SV1, f.JPEG_LS_NEAR, f.J2K):
        out = dw_client.retrieve_instance(signed.StudyInstanceUID, signed.SeriesInstanceUID, signed.SOPInstanceUID,
                                          media_types=(("application/dicom", target),))
        assert out.PixelRepresentation == 1 and out.pixel_array.min() < 0
        _check_pixels(out, signed, target)


def test_wado_uri_image_quality_sets_lossy_quality(http, archive_config):
    original = grey8()
    _store(original)
    high = _wado_uri(http, original, transferSyntax=f.JPEG_BASELINE, imageQuality="95")
    low = _wado_uri(http, original, transferSyntax=f.JPEG_BASELINE, imageQuality="10")
    assert high.status_code == low.status_code == 200
    high_ds, low_ds = dcmread(io.BytesIO(high.content)), dcmread(io.BytesIO(low.content))
    assert float(low_ds.LossyImageCompressionRatio) > float(high_ds.LossyImageCompressionRatio)
    assert low_ds.SOPInstanceUID != high_ds.SOPInstanceUID  # a different derived image
    bad = _wado_uri(http, original, transferSyntax=f.JPEG_LS_LOSSLESS, imageQuality="50")
    assert bad.status_code == 400 and "imageQuality" in bad.json()


def _palette8(**kwargs):
    ds = grey8(**kwargs)
    ds.PhotometricInterpretation = "PALETTE COLOR"
    for colour in ("Red", "Green", "Blue"):
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [256, 0, 16])
        setattr(ds, f"{colour}PaletteColorLookupTableData", np.arange(256, dtype=np.uint16).tobytes())
    return ds


@pytest.mark.parametrize(
    "make, target, reason",
    [
        (grey16, f.JPEG_BASELINE, "8-bit unsigned"),
        (signed16, f.JPEG_EXTENDED, "unsigned"),
        (rgb8, f.JPEG_EXTENDED, "MONOCHROME1/2 only"),
        (_palette8, f.J2K, "PALETTE COLOR"),
        (_palette8, f.JPEG_BASELINE, "PALETTE COLOR"),
    ],
)
def test_impossible_pixel_formats_are_not_acceptable(http, archive_config, make, target, reason):
    original = make()
    _store(original)
    rs = http.get(_instance_url(http, original), headers={"Accept": _accept(target)})
    assert rs.status_code == 406 and reason in rs.json()["detail"]
    uri = _wado_uri(http, original, transferSyntax=target)
    assert uri.status_code == 406 and reason in uri.json()["detail"]


def test_wado_uri_transfer_syntax_values(http, archive_config):
    original = grey16()
    _store(original)
    assert _wado_uri(http, original, transferSyntax="1.2.3").status_code == 400  # not a transfer syntax
    assert _wado_uri(http, original, transferSyntax=f.HTJ2K_LOSSLESS).status_code == 406  # one we do not write
    assert _wado_uri(http, original, transferSyntax=f.EXPLICIT_BE).status_code == 406
    video = f.ct_dataset()
    _store(video, f.MPEG2)
    assert _wado_uri(http, video, transferSyntax=f.JPEG_LOSSLESS_SV1).status_code == 406


def test_mixed_study_gets_a_syntax_per_part(http, archive_config):
    study, series = generate_uid(), generate_uid()
    eight = grey8(study_uid=study, series_uid=series, instance_number=1)
    sixteen = grey16(study_uid=study, series_uid=series, instance_number=2)
    _store(eight)
    _store(sixteen)
    url = http.url(f"/dicomweb/studies/{study}")
    only_baseline = http.get(url, headers={"Accept": _accept(f.JPEG_BASELINE)})
    assert only_baseline.status_code == 406 and sixteen.SOPInstanceUID in only_baseline.json()["detail"]
    # PS3.18 8.7.8.2: the selected transfer syntax may differ per part.
    response = http.get(url, headers={"Accept": _accept(f.JPEG_BASELINE) + ", " + _accept(f.EXPLICIT_LE)
                                      .replace(f.EXPLICIT_LE, f.EXPLICIT_LE + "; q=0.5")})
    assert response.status_code == 200
    assert "transfer-syntax" not in response.headers["Content-Type"]
    syntaxes = [headers["content-type"].split("transfer-syntax=")[1] for headers, _ in multipart_parts(response)]
    assert syntaxes == [f.JPEG_BASELINE, f.EXPLICIT_LE]


# --- Frames in compressed media types (PS3.18 8.7.3.5.4, Table 8.7.3-5) -----------------


def _multiframe(**kwargs):
    ds = grey16(**kwargs)
    frames = np.stack([((_XX * 40 + _YY * 24 + 300 * i) % 4096) for i in range(3)]).astype(np.uint16)
    ds.NumberOfFrames = 3
    ds.PixelData = frames.tobytes()
    return ds, frames


def _decode_frame(data: bytes, syntax: str, like, photometric: str | None = None) -> np.ndarray:
    arr, _ = get_decoder(syntax).as_array(
        encapsulate([data]), rows=like.Rows, columns=like.Columns, samples_per_pixel=like.SamplesPerPixel,
        bits_allocated=like.BitsAllocated, bits_stored=like.BitsStored,
        pixel_representation=like.PixelRepresentation,
        photometric_interpretation=photometric or like.PhotometricInterpretation, number_of_frames=1,
        planar_configuration=0,
    )
    return arr


@pytest.mark.parametrize(
    "accept, syntax",
    [
        ('multipart/related; type="image/jpeg"', f.JPEG_LOSSLESS_SV1),  # the default of image/jpeg
        (f'multipart/related; type="image/jpeg"; transfer-syntax={f.JPEG_LOSSLESS}', f.JPEG_LOSSLESS),
        (f'multipart/related; type="image/jpeg"; transfer-syntax={f.JPEG_EXTENDED}', f.JPEG_EXTENDED),
        ('multipart/related; type="image/jls"', f.JPEG_LS_LOSSLESS),
        (f'multipart/related; type="image/jls"; transfer-syntax={f.JPEG_LS_NEAR}', f.JPEG_LS_NEAR),
        ('multipart/related; type="image/jp2"', f.J2K_LOSSLESS),
        (f'multipart/related; type="image/jp2"; transfer-syntax={f.J2K}', f.J2K),
        ('multipart/related; type="image/dicom-rle"', f.RLE),
    ],
)
def test_frames_in_compressed_media_types(http, archive_config, accept, syntax):
    ds, frames = _multiframe()
    _store(ds)
    url = _instance_url(http, ds) + "/frames/1,3"
    response = http.get(url, headers={"Accept": accept})
    assert response.status_code == 200, response.text
    media_type = accept.split('"')[1]
    assert response.headers["Content-Type"].startswith(f'multipart/related; type="{media_type}"')
    parts = multipart_parts(response)
    assert [headers["content-type"] for headers, _ in parts] == [f"{media_type}; transfer-syntax={syntax}"] * 2
    for (_, data), expected in zip(parts, (frames[0], frames[2]), strict=True):
        got = _decode_frame(data, syntax, ds)
        if syntax in LOSSY_TARGETS:
            assert np.abs(got.astype(np.int64) - expected).max() <= LOSSY_TARGETS[syntax][1]
        else:
            assert np.array_equal(got, expected)


def test_frames_with_dicomweb_client_and_not_acceptable_ones(http, dw_client, archive_config):
    colour = rgb8()
    _store(colour, f.RLE)
    got, = dw_client.retrieve_instance_frames(colour.StudyInstanceUID, colour.SeriesInstanceUID,
                                              colour.SOPInstanceUID, frame_numbers=[1],
                                              media_types=(("image/jpeg", f.JPEG_BASELINE),))
    rgb = _decode_frame(got, f.JPEG_BASELINE, colour, "YBR_FULL_422")
    assert np.abs(rgb.astype(np.int64) - colour.pixel_array).max() <= LOSSY_TARGETS[f.JPEG_BASELINE][1]
    ds, _ = _multiframe()
    _store(ds)
    url = _instance_url(http, ds) + "/frames/2"
    refused = http.get(url, headers={"Accept": f'multipart/related; type="image/jpeg"; transfer-syntax={f.JPEG_BASELINE}'})
    assert refused.status_code == 406 and "8-bit unsigned" in refused.json()["detail"]

"""Pixel data encoders for transcoding (PS3.5 8.2, A.4) and the record of lossy compression.

pydicom 3.0 encodes RLE, JPEG-LS and JPEG 2000 (lossless and lossy) but has no
JPEG (ISO/IEC 10918) encoder.  The four JPEG syntaxes are produced here with
``imagecodecs`` (libjpeg-turbo 3), which writes 8- and 12-bit DCT streams and
2-16 bit lossless (process 14) streams:

============================  ===========================================================
JPEG Baseline (.50)           8-bit unsigned; MONOCHROME1/2, or colour coded YCbCr 4:2:2
                              and labelled YBR_FULL_422 (PS3.5 8.2.1)
JPEG Extended (.51)           MONOCHROME1/2 unsigned, 8 bits in 8 or up to 12 bits in 16
                              (coded with 12-bit precision, BitsStored becomes 12)
JPEG Lossless (.57), SV1      1-16 bits, signed monochrome too (the stored bit pattern is
(.70)                         coded); colour stays RGB/YBR_FULL (no colour transform);
                              predictor 1 for both (.57 allows any, SV1 is what every
                              reader supports)
============================  ===========================================================

These are PS3.5 Tables 8.2.1-1/-2 (pydicom's ``ENCODING_PROFILES`` mirror
them).  Anything else - 16-bit or signed data to a lossy JPEG, PALETTE COLOR to
a lossy syntax - raises :class:`EncodingNotAllowed` with the reason: WADO
answers 406, never a silently rescaled image.

Lossy targets (JPEG .50/.51, JPEG-LS near-lossless .81, JPEG 2000 .91) follow
PS3.3 C.7.6.1.1.5: the result is a *derived* image - Lossy Image Compression
"01", the ratio and method appended to Lossy Image Compression Ratio/Method,
Image Type value 1 DERIVED, Derivation Code Sequence (DCM 113040 "Lossy
Compression"), the original in Source Image Sequence (DCM 121320 "Uncompressed
predecessor") and a new SOP Instance UID.  The new UID is derived from the
original UID, the target syntax and the quality (a ``2.25.`` UUID-derived UID),
so asking twice gives the same instance rather than two near-duplicates.

Quality: ``quality`` 1-100 (WADO-URI ``imageQuality``, default
:data:`DEFAULT_QUALITY`) is the libjpeg quality for JPEG; JPEG 2000 uses a
compression ratio of ``1 + (100 - quality) / 2`` (6:1 at 90); JPEG-LS a NEAR
of ``max(1, round((100 - quality) / 5))`` (2 at 90).
"""

from __future__ import annotations

import logging
import uuid

import numpy as np
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, encapsulate_extended
from pydicom.pixels import convert_color_space, get_decoder, get_encoder
from pydicom.sequence import Sequence
from pydicom.uid import (
    JPEG2000,
    UID,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

logger = logging.getLogger(__name__)

DEFAULT_QUALITY = 90
JPEG_SYNTAXES = frozenset({JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLossless, JPEGLosslessSV1})
# Pixel data encoded by pydicom's own encoder plugins.
PYDICOM_SYNTAXES = frozenset({RLELossless, JPEGLSLossless, JPEGLSNearLossless, JPEG2000Lossless, JPEG2000})
# Lossy Image Compression Method defined terms (PS3.3 C.7.6.1.1.5.1).
LOSSY_METHODS = {
    JPEGBaseline8Bit: "ISO_10918_1",
    JPEGExtended12Bit: "ISO_10918_1",
    JPEGLSNearLossless: "ISO_14495_1",
    JPEG2000: "ISO_15444_1",
}
LOSSY_SYNTAXES = frozenset(LOSSY_METHODS)
ENCODABLE = frozenset({ExplicitVRLittleEndian, ImplicitVRLittleEndian} | JPEG_SYNTAXES | PYDICOM_SYNTAXES)
_MONOCHROME = ("MONOCHROME1", "MONOCHROME2")


class EncodingNotAllowed(ValueError):
    """PS3.5 does not allow (or no encoder can write) this pixel format in the target syntax."""


def _imagecodecs():
    try:
        import imagecodecs
    except ImportError:  # pragma: no cover - a pinned dependency
        return None
    return imagecodecs if imagecodecs.JPEG8.available else None


def encoder_available(target: str) -> bool:
    """True when this process can write pixel data in *target* (uncompressed always)."""
    target = UID(target)
    if target in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
        return True
    if target in JPEG_SYNTAXES:
        return _imagecodecs() is not None
    if target in PYDICOM_SYNTAXES:
        try:
            return bool(get_encoder(target).is_available)
        except NotImplementedError:
            return False
    return False


def photometric_after_decoding(ds: Dataset, source_ts: str) -> str:
    """The Photometric Interpretation pixels have once decoded for transcoding.

    :mod:`pacs.services.transcode` decodes compressed colour as RGB; native
    YBR_FULL_422 is expanded to RGB too (it cannot be re-encoded as it is).
    """
    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip().upper()
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    decoded_to_rgb = UID(source_ts).is_compressed or photometric == "YBR_FULL_422"
    if samples == 3 and photometric.startswith("YBR") and decoded_to_rgb:
        return "RGB"
    return photometric


def profile_check(ds: Dataset, target: str, *, photometric: str | None = None) -> None:
    """Raise :class:`EncodingNotAllowed` unless *ds*'s pixels may be written in *target*.

    *ds* needs only the Image Pixel module (a header read is enough);
    *photometric* overrides its Photometric Interpretation (see
    :func:`photometric_after_decoding`).  Instances without Pixel Data pass.
    PS3.5 Tables 8.2.1-1 (JPEG lossy), 8.2.1-2 (JPEG lossless), 8.2.3-1
    (JPEG-LS), 8.2.4-1 (JPEG 2000).
    """
    target = UID(target)
    if target in (ExplicitVRLittleEndian, ImplicitVRLittleEndian) or "Rows" not in ds:
        return
    photometric = (photometric or str(ds.get("PhotometricInterpretation", ""))).strip().upper()
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    allocated = int(ds.get("BitsAllocated", 0) or 0)
    stored = int(ds.get("BitsStored", allocated) or allocated)
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    what = f"{photometric} {stored}-bit{' signed' if signed else ''} pixel data"
    if allocated not in (8, 16) and target != JPEG2000Lossless and target != JPEG2000:
        raise EncodingNotAllowed(f"{target.name} cannot hold {allocated}-bit allocated pixel data")
    if target in LOSSY_SYNTAXES and photometric == "PALETTE COLOR":
        raise EncodingNotAllowed(f"{target.name} is lossy: PALETTE COLOR indices cannot be lossy compressed")
    if target == JPEGBaseline8Bit:
        if allocated != 8 or signed:
            raise EncodingNotAllowed(
                f"JPEG Baseline holds 8-bit unsigned samples only, not {what} "
                "(ask for JPEG Extended, JPEG Lossless, JPEG-LS or JPEG 2000)"
            )
        if photometric not in (*_MONOCHROME, "RGB", "YBR_FULL"):
            raise EncodingNotAllowed(f"JPEG Baseline cannot encode {photometric} pixel data")
    elif target == JPEGExtended12Bit:
        if samples != 1 or photometric not in _MONOCHROME:
            raise EncodingNotAllowed(f"JPEG Extended holds MONOCHROME1/2 only, not {photometric}; use JPEG Baseline")
        if signed or stored > 12:
            raise EncodingNotAllowed(
                f"JPEG Extended holds unsigned samples of up to 12 bits, not {what} "
                "(ask for JPEG Lossless, JPEG-LS or JPEG 2000)"
            )
    elif target in (JPEGLossless, JPEGLosslessSV1):
        if stored > 16 or (signed and samples != 1):
            raise EncodingNotAllowed(f"{target.name} cannot encode {what}")
        if photometric not in (*_MONOCHROME, "PALETTE COLOR", "RGB", "YBR_FULL"):
            raise EncodingNotAllowed(f"{target.name} cannot encode {photometric} pixel data")
    elif target in (JPEGLSLossless, JPEGLSNearLossless):
        if stored < 2 or stored > 16 or (samples == 3 and signed):
            raise EncodingNotAllowed(f"{target.name} cannot encode {what}")
    elif target in (RLELossless, JPEG2000Lossless, JPEG2000) and samples == 3 and signed:
        raise EncodingNotAllowed(f"{target.name} cannot encode {what}")


# --- Encoding ------------------------------------------------------------------------


def _options(target: UID, quality: int) -> dict:
    if target == JPEG2000:
        return {"j2k_cr": [1 + (100 - quality) / 2]}
    if target == JPEGLSNearLossless:
        return {"jls_error": max(1, round((100 - quality) / 5))}
    return {}


def _frames(ds: Dataset) -> np.ndarray:
    """Frames of an uncompressed little endian dataset, shape (frames, rows, columns[, samples])."""
    arr, _ = get_decoder(ExplicitVRLittleEndian).as_array(ds, as_rgb=False, raw=True)
    if int(ds.get("NumberOfFrames", 1) or 1) <= 1:
        arr = arr[np.newaxis]
    return arr


def jpeg_frame_encode(arr: np.ndarray, ds: Dataset, target: str, *, quality: int = DEFAULT_QUALITY) -> bytes:
    """One frame (rows x columns [x 3]) as a JPEG stream for *target*.

    *ds* supplies BitsStored, PixelRepresentation and PhotometricInterpretation
    of *arr* (already checked with :func:`profile_check`).
    """
    codec = _imagecodecs()
    if codec is None:
        raise EncodingNotAllowed("imagecodecs (libjpeg-turbo) is not installed: no JPEG encoder")
    target = UID(target)
    arr = np.ascontiguousarray(arr)  # decoders may hand over planar (strided) colour
    photometric = str(ds.PhotometricInterpretation).upper()
    stored = int(ds.get("BitsStored", ds.BitsAllocated))
    colour = arr.ndim == 3
    if target in (JPEGLossless, JPEGLosslessSV1):
        precision = max(stored, 2)
        # Signed data: the two's complement pattern within BitsStored is coded (decoders sign-extend).
        data = arr.view(np.uint16 if arr.itemsize == 2 else np.uint8) & ((1 << precision) - 1)
        data = data.astype(np.uint8 if precision <= 8 else np.uint16)
        space = "RGB" if colour else None  # lossless: no colour transform, RGB or YBR_FULL as held
        return bytes(codec.jpeg8_encode(data, lossless=True, predictor=1, bitspersample=precision,
                                        colorspace=space, outcolorspace=space))
    if target == JPEGExtended12Bit and arr.itemsize == 2:
        data = arr.astype(np.uint16) & 0x0FFF
        return bytes(codec.jpeg8_encode(data, level=quality, bitspersample=12))
    data = arr.astype(np.uint8)
    if colour:
        # PS3.5 8.2.1: lossy colour is YCbCr with 4:2:2 chrominance, labelled YBR_FULL_422.
        source = "YCBCR" if photometric == "YBR_FULL" else "RGB"
        return bytes(codec.jpeg8_encode(data, level=quality, colorspace=source, outcolorspace="YCBCR",
                                        subsampling="422"))
    return bytes(codec.jpeg8_encode(data, level=quality, bitspersample=8))


def frame_encode(arr: np.ndarray, header: Dataset, target: str, *, source_ts: str,
                 quality: int | None = None) -> bytes:
    """One decoded frame (as :func:`pacs.services.rendering.frame_array` returns it) in *target*.

    For WADO-RS frames in a compressed media type (PS3.18 8.7.3.5.4): the
    frame is a bit stream, not an instance, so nothing is recorded for lossy
    targets.  *header* is the stored instance's header; colour decoded from
    YCbCr is RGB (:func:`photometric_after_decoding`).

    Raises
    ------
    EncodingNotAllowed
        As :func:`profile_check`, or no encoder for *target*.
    """
    target = UID(target)
    quality = DEFAULT_QUALITY if quality is None else max(1, min(100, int(quality)))
    photometric = photometric_after_decoding(header, source_ts)
    profile_check(header, target, photometric=photometric)
    if not encoder_available(target):
        raise EncodingNotAllowed(f"No encoder for {target.name} is installed")
    frame = Dataset()
    for keyword in ("Rows", "Columns", "SamplesPerPixel", "BitsAllocated", "BitsStored", "PixelRepresentation"):
        setattr(frame, keyword, header.get(keyword))
    frame.PhotometricInterpretation = photometric
    if target in JPEG_SYNTAXES:
        return jpeg_frame_encode(arr, frame, target, quality=quality)
    if target == JPEG2000 and photometric == "RGB":
        photometric = "YBR_ICT"
    options = {
        "rows": int(frame.Rows), "columns": int(frame.Columns), "samples_per_pixel": int(frame.SamplesPerPixel),
        "bits_allocated": int(frame.BitsAllocated), "bits_stored": int(frame.BitsStored),
        "pixel_representation": int(frame.PixelRepresentation or 0), "photometric_interpretation": photometric,
        "number_of_frames": 1, "planar_configuration": 0,
    }
    return bytes(get_encoder(target).encode(np.ascontiguousarray(arr), **options, **_options(target, quality)))


def _jpeg_encode(ds: Dataset, target: UID, quality: int) -> None:
    frames = _frames(ds)
    encoded = [jpeg_frame_encode(frame, ds, target, quality=quality) for frame in frames]
    if target in (JPEGBaseline8Bit, JPEGExtended12Bit):
        if int(ds.SamplesPerPixel) == 3:
            ds.PhotometricInterpretation = "YBR_FULL_422"
        # Table 8.2.1-1: 8 bits in 8, 12 bits in 16 (values are unchanged, only the declared depth).
        ds.BitsStored = 8 if int(ds.BitsAllocated) == 8 else 12
        ds.HighBit = ds.BitsStored - 1
    if int(ds.SamplesPerPixel) == 3:
        ds.PlanarConfiguration = 0
    _set_encapsulated(ds, encoded)
    ds.file_meta.TransferSyntaxUID = target


def _set_encapsulated(ds: Dataset, encoded: list[bytes]) -> None:
    total = sum(len(frame) + 8 for frame in encoded)
    if total > 2**32 - 1:
        ds.PixelData, ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths = encapsulate_extended(encoded)
    else:
        ds.PixelData = encapsulate(encoded)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True


def _native_colour(ds: Dataset) -> None:
    """Native YBR_FULL_422 (subsampled) cannot be re-encoded as held: expand it to RGB."""
    if int(ds.get("SamplesPerPixel", 1) or 1) == 3 and str(ds.PhotometricInterpretation).upper() == "YBR_FULL_422":
        arr, _ = get_decoder(ExplicitVRLittleEndian).as_array(ds, as_rgb=False)
        arr = convert_color_space(arr, "YBR_FULL", "RGB")
        ds.PhotometricInterpretation = "RGB"
        ds.PlanarConfiguration = 0
        ds.PixelData = np.ascontiguousarray(arr).tobytes()


def pixel_data_encode(ds: Dataset, target: str, *, quality: int | None = None) -> None:
    """Encode the uncompressed little endian Pixel Data of *ds* in *target*, in place.

    Parameters
    ----------
    ds
        A dataset whose ``file_meta.TransferSyntaxUID`` is Explicit VR Little
        Endian and whose pixels are native (decoded colour is RGB).
    target
        A compressed transfer syntax of :data:`ENCODABLE`.
    quality
        1-100 for lossy targets (default :data:`DEFAULT_QUALITY`); ignored otherwise.

    Raises
    ------
    EncodingNotAllowed
        The pixel format is not allowed in *target* (PS3.5 8.2) or no encoder is installed.
    """
    target = UID(target)
    quality = DEFAULT_QUALITY if quality is None else max(1, min(100, int(quality)))
    _native_colour(ds)
    profile_check(ds, target)
    if not encoder_available(target):
        raise EncodingNotAllowed(f"No encoder for {target.name} is installed")
    original_uid = str(ds.get("SOPInstanceUID", ""))
    original_size = len(ds.PixelData)
    if target in JPEG_SYNTAXES:
        _jpeg_encode(ds, target, quality)
    else:
        if target == JPEG2000 and int(ds.SamplesPerPixel) == 3 and str(ds.PhotometricInterpretation) == "RGB":
            ds.PhotometricInterpretation = "YBR_ICT"  # PS3.5 8.2.4: irreversible colour transform applied
        ds.compress(target, generate_instance_uid=False, **_options(target, quality))
    if target in LOSSY_SYNTAXES:
        compressed = max(len(ds.PixelData), 1)
        lossy_record(ds, target=target, ratio=original_size / compressed, quality=quality,
                     original_uid=original_uid)


def lossy_record(ds: Dataset, *, target: str, ratio: float, quality: int, original_uid: str) -> None:
    """Record a lossy compression in *ds* as PS3.3 C.7.6.1.1.5 asks and give it a derived UID."""
    target = UID(target)
    ratios = [str(v) for v in _values(ds.get("LossyImageCompressionRatio"))]
    methods = [str(v) for v in _values(ds.get("LossyImageCompressionMethod"))]
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionRatio = [*ratios, f"{ratio:.2f}"[:16]]
    ds.LossyImageCompressionMethod = [*methods, LOSSY_METHODS[target]]
    if "ImageType" in ds and ds.ImageType:
        values = list(_values(ds.ImageType))
        ds.ImageType = ["DERIVED", *values[1:]]
    description = f"Lossy compression {target.name}, ratio {ratio:.1f}:1, quality {quality}"
    previous = str(ds.get("DerivationDescription", "") or "")
    ds.DerivationDescription = (f"{previous}; {description}" if previous else description)[:1024]
    ds.DerivationCodeSequence = Sequence([_code("113040", "Lossy Compression")])
    if original_uid:
        source = Dataset()
        source.ReferencedSOPClassUID = ds.get("SOPClassUID", "")
        source.ReferencedSOPInstanceUID = original_uid
        source.PurposeOfReferenceCodeSequence = Sequence([_code("121320", "Uncompressed predecessor")])
        ds.SourceImageSequence = Sequence([source])
        # PS3.5 B.2 UUID-derived UID; a name-based UUID so the same request gives the same UID.
        new_uid = f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, f'{original_uid}/{target}/{quality}').int}"
        ds.SOPInstanceUID = new_uid
        if hasattr(ds, "file_meta"):
            ds.file_meta.MediaStorageSOPInstanceUID = new_uid
    logger.debug("lossy compression recorded original=%s new=%s ratio=%.2f", original_uid, ds.get("SOPInstanceUID"),
                 ratio)


def _code(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = "DCM"
    item.CodeMeaning = meaning
    return item


def _values(value) -> list:
    if value is None or value == "":
        return []
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        return [value]
    return list(value)


__all__ = [
    "DEFAULT_QUALITY",
    "ENCODABLE",
    "JPEG_SYNTAXES",
    "LOSSY_SYNTAXES",
    "EncodingNotAllowed",
    "encoder_available",
    "frame_encode",
    "jpeg_frame_encode",
    "lossy_record",
    "photometric_after_decoding",
    "pixel_data_encode",
    "profile_check",
]

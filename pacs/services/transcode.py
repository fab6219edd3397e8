"""Transcoding of archived instances to another transfer syntax (PS3.5 8, 10).

Used wherever an instance leaves the archive in a syntax the receiver asked
for: C-MOVE/C-GET sub-operations and C-STORE jobs (the peer did not accept the
stored syntax), WADO-RS/WADO-URI (``transfer-syntax=`` / ``transferSyntax=``).
The archived file is never modified; the result is a new in-memory dataset.

* Decoding: every stored syntax pydicom has a decoder for here - JPEG Baseline,
  Extended, Lossless (.57, .70) via pylibjpeg-libjpeg; JPEG-LS via pyjpegls;
  JPEG 2000 and HTJ2K via pylibjpeg-openjpeg; RLE - plus Explicit Big Endian
  and Deflated, which need no codec.  Colour data decoded from YCbCr is
  returned as RGB (PhotometricInterpretation updated).
* Encoding (:mod:`pacs.services.encoders`): uncompressed little endian
  (explicit/implicit) always; RLE, JPEG-LS (lossless and near-lossless), JPEG
  2000 (lossless and lossy) through pydicom's encoders; JPEG Baseline,
  Extended, Lossless and Lossless SV1 through libjpeg-turbo - each where PS3.5
  8.2 allows the pixel format (16-bit to JPEG Baseline is a
  :class:`TranscodeError`, never a rescaled image).  Lossy targets are never
  chosen automatically (:data:`FALLBACK_ORDER`), only when asked for.
* Video (MPEG-2/4, HEVC) cannot be decoded: :class:`TranscodeError`.
* Lossless targets keep the SOP Instance UID: a change of encoding for
  transfer, not a new instance (pydicom would otherwise generate a new UID).
  Lossy targets produce a derived instance with a new, deterministic UID and
  the lossy compression recorded (PS3.3 C.7.6.1.1.5; see
  :func:`pacs.services.encoders.lossy_record`).

API: :func:`instance_transcode`, :func:`dataset_encode`,
:func:`transfer_syntax_choose`, :func:`can_transcode`, :func:`transcode_check`.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.pixels import get_decoder
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)

from pacs.exceptions import PacsError
from pacs.services import encoders

logger = logging.getLogger(__name__)

UNCOMPRESSED = frozenset(
    {ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian}
)
# Preference when the stored syntax is not accepted: lossless only, cheapest first.
FALLBACK_ORDER = (ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGLSLossless, JPEG2000Lossless,
                  JPEGLosslessSV1, RLELossless)
# Targets this module can produce from decoded pixels.
ENCODABLE = encoders.ENCODABLE


class TranscodeError(PacsError):
    """The instance cannot be converted to the requested transfer syntax.

    ``http_status`` 406 (WADO: not acceptable); DIMSE callers count a failed
    sub-operation.
    """

    dicom_status = 0xC000
    http_status = 406


def _decodable(transfer_syntax: str) -> bool:
    if transfer_syntax in UNCOMPRESSED:
        return True
    try:
        return bool(get_decoder(transfer_syntax).is_available)
    except NotImplementedError:
        return False


def _encodable(transfer_syntax: str) -> bool:
    return transfer_syntax in ENCODABLE and encoders.encoder_available(transfer_syntax)


def can_transcode(source_ts: str, target_ts: str, *, has_pixels: bool = True) -> bool:
    """True when an instance stored in *source_ts* can be delivered in *target_ts*.

    Without pixel data every syntax is a plain little endian encoding, so any
    little endian target works.  This is a check of syntaxes only; whether the
    pixel format fits *target* is :func:`transcode_check`.
    """
    if source_ts == target_ts:
        return True
    if not has_pixels:
        return target_ts != ExplicitVRBigEndian
    return _decodable(source_ts) and _encodable(target_ts)


def transfer_syntax_choose(
    stored_ts: str, accepted: Iterable[str], *, preferred: str = "", has_pixels: bool = True
) -> str | None:
    """The transfer syntax to send an instance in, given what the peer accepted.

    Order: *preferred* (e.g. ``RemoteNode.preferred_transfer_syntax``) when
    accepted and reachable; the stored syntax as is (no transcoding); then
    Explicit VR LE, Implicit VR LE, JPEG-LS Lossless, JPEG 2000 Lossless, RLE.

    Returns ``None`` when nothing accepted can be produced.
    """
    accepted = [str(ts) for ts in accepted]
    if preferred and preferred in accepted and can_transcode(stored_ts, preferred, has_pixels=has_pixels):
        return preferred
    if stored_ts in accepted:
        return stored_ts
    for candidate in FALLBACK_ORDER:
        if candidate in accepted and can_transcode(stored_ts, candidate, has_pixels=has_pixels):
            return candidate
    return None


def _swap_to_little(ds: Dataset) -> None:
    """Big endian pixel words to little endian, keeping layout (pydicom writes OW as held)."""
    bits = int(ds.get("BitsAllocated", 8) or 8)
    if "PixelData" in ds and bits in (16, 32, 64):
        size = bits // 8
        raw = ds.PixelData
        ds.PixelData = np.frombuffer(raw, f">u{size}").astype(f"<u{size}").tobytes()
        ds["PixelData"].VR = "OW"


def transcode_check(header: Dataset, target_ts: str) -> None:
    """Raise :class:`TranscodeError` unless the instance with *header* can be delivered in *target_ts*.

    *header* is the stored file read up to the pixels (``stop_before_pixels``),
    with its ``file_meta``: callers that stream (WADO-RS) check every instance
    before the first byte is sent, so an impossible request is a 406, not a
    response cut short.
    """
    target = UID(target_ts)
    current = UID(str(header.file_meta.get("TransferSyntaxUID", ExplicitVRLittleEndian)))
    if current == target:
        return
    has_pixels = "Rows" in header
    if not can_transcode(current, target, has_pixels=has_pixels):
        raise TranscodeError(f"Cannot transcode from {current.name} to {target.name}")
    if has_pixels and target.is_compressed:
        try:
            encoders.profile_check(header, target, photometric=encoders.photometric_after_decoding(header, current))
        except encoders.EncodingNotAllowed as exc:
            raise TranscodeError(str(exc)) from exc


def instance_transcode(
    source: str | Path | bytes | Dataset, target_ts: str, *, quality: int | None = None
) -> Dataset:
    """Return the instance *source* re-encoded in *target_ts* (a new dataset).

    Parameters
    ----------
    source
        Archived file path, Part 10 bytes or a dataset with ``file_meta``
        (a passed dataset is modified in place and returned).
    target_ts
        Transfer syntax UID wanted.
    quality
        1-100 for a lossy *target_ts* (WADO-URI ``imageQuality``); default
        :data:`pacs.services.encoders.DEFAULT_QUALITY`.

    Returns
    -------
    Dataset
        With ``file_meta.TransferSyntaxUID`` = *target_ts*, pixel data encoded
        accordingly and its original encoding set to match, ready for
        ``send_c_store`` or :func:`dataset_encode`.  A lossy *target_ts* gives
        a derived instance with a new SOP Instance UID.

    Raises
    ------
    TranscodeError
        Unreadable source, no decoder for the stored syntax (video), or a
        pixel format PS3.5 does not allow in *target_ts* (message says why).
    """
    target = UID(target_ts)
    try:
        if isinstance(source, Dataset):
            ds = source
        elif isinstance(source, (bytes, bytearray, memoryview)):
            ds = dcmread(io.BytesIO(bytes(source)))
        else:
            ds = dcmread(source)
    except Exception as exc:
        raise TranscodeError(f"Cannot read instance: {exc.__class__.__name__}: {exc}") from exc
    current = UID(str(ds.file_meta.get("TransferSyntaxUID", ExplicitVRLittleEndian)))
    if current == target:
        return ds
    has_pixels = "PixelData" in ds
    if not can_transcode(current, target, has_pixels=has_pixels):
        raise TranscodeError(f"Cannot transcode from {current.name} to {target.name}")
    try:
        # Convert every still-raw element now, while its original encoding is known.
        for _ in ds.iterall():
            pass
        if has_pixels and current.is_compressed:
            ds.decompress(as_rgb=True, generate_instance_uid=False)
        elif has_pixels and current == ExplicitVRBigEndian:
            _swap_to_little(ds)
        if has_pixels and target.is_compressed:
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.set_original_encoding(False, True, ds.original_character_set)
            encoders.pixel_data_encode(ds, target, quality=quality)
        else:
            ds.file_meta.TransferSyntaxUID = target
            ds.set_original_encoding(target.is_implicit_VR, True, ds.original_character_set)
    except TranscodeError:
        raise
    except encoders.EncodingNotAllowed as exc:
        raise TranscodeError(str(exc)) from exc
    except Exception as exc:  # codec limits: bit depth, photometric, corrupt stream
        raise TranscodeError(f"Cannot transcode from {current.name} to {target.name}: {exc}") from exc
    logger.debug("transcode sop_instance_uid=%s from=%s to=%s", ds.get("SOPInstanceUID"), current, target)
    return ds


def dataset_encode(ds: Dataset) -> bytes:
    """Part 10 file bytes of *ds* in its ``file_meta.TransferSyntaxUID``."""
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def instance_for_peer(
    path: str | Path, target_ts: str, *, stored_ts: str, accepted: Iterable[str], has_pixels: bool = True
) -> Dataset:
    """The archived file at *path* in *target_ts* (from :func:`transfer_syntax_choose`) for a C-STORE.

    A node's preferred syntax may be one this image cannot take (a 16-bit CT
    and JPEG Baseline, PS3.5 A.4.1): then the next choice without the
    preference is used - the stored syntax as is, or a lossless one - instead
    of failing the sub-operation.
    """
    try:
        return instance_transcode(path, target_ts)
    except TranscodeError as exc:
        fallback = transfer_syntax_choose(stored_ts, accepted, has_pixels=has_pixels)
        if fallback is None or fallback == target_ts:
            raise
        logger.info("preferred transfer syntax %s not possible (%s); sending %s", target_ts, exc, fallback)
        if fallback == stored_ts:
            return dcmread(path)
        return instance_transcode(path, fallback)

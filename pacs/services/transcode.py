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
* Encoding: uncompressed little endian (explicit/implicit) always; RLE
  Lossless, JPEG-LS Lossless and JPEG 2000 Lossless where pydicom's encoders
  support the pixel format.  Lossy targets are never chosen automatically.
* Video (MPEG-2/4, HEVC) cannot be decoded: :class:`TranscodeError`.
* The SOP Instance UID is kept: this is a change of encoding for transfer, not
  a new instance (pydicom would otherwise generate a new UID).

API: :func:`instance_transcode`, :func:`dataset_encode`,
:func:`transfer_syntax_choose`, :func:`can_transcode`.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.pixels import get_decoder, get_encoder
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

from pacs.exceptions import PacsError

logger = logging.getLogger(__name__)

UNCOMPRESSED = frozenset(
    {ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian}
)
# Preference when the stored syntax is not accepted: lossless only, cheapest first.
FALLBACK_ORDER = (ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGLSLossless, JPEG2000Lossless, RLELossless)
# Targets this module can produce from decoded pixels.
ENCODABLE = frozenset({ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless, JPEGLSLossless,
                       JPEG2000Lossless})


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
    if transfer_syntax in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
        return True
    if transfer_syntax not in ENCODABLE:
        return False
    try:
        return bool(get_encoder(transfer_syntax).is_available)
    except NotImplementedError:
        return False


def can_transcode(source_ts: str, target_ts: str, *, has_pixels: bool = True) -> bool:
    """True when an instance stored in *source_ts* can be delivered in *target_ts*.

    Without pixel data every syntax is a plain little endian encoding, so any
    little endian target works.
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


def instance_transcode(source: str | Path | bytes | Dataset, target_ts: str) -> Dataset:
    """Return the instance *source* re-encoded in *target_ts* (a new dataset).

    Parameters
    ----------
    source
        Archived file path, Part 10 bytes or a dataset with ``file_meta``
        (a passed dataset is modified in place and returned).
    target_ts
        Transfer syntax UID wanted.

    Returns
    -------
    Dataset
        With ``file_meta.TransferSyntaxUID`` = *target_ts*, pixel data encoded
        accordingly and its original encoding set to match, ready for
        ``send_c_store`` or :func:`dataset_encode`.

    Raises
    ------
    TranscodeError
        Unreadable source, no decoder for the stored syntax (video) or no
        encoder for the pixel format in *target_ts*.
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
            ds.compress(target, generate_instance_uid=False)
        else:
            ds.file_meta.TransferSyntaxUID = target
            ds.set_original_encoding(target.is_implicit_VR, True, ds.original_character_set)
    except TranscodeError:
        raise
    except Exception as exc:  # codec limits: bit depth, photometric, corrupt stream
        raise TranscodeError(f"Cannot transcode from {current.name} to {target.name}: {exc}") from exc
    logger.debug("transcode sop_instance_uid=%s from=%s to=%s", ds.get("SOPInstanceUID"), current, target)
    return ds


def dataset_encode(ds: Dataset) -> bytes:
    """Part 10 file bytes of *ds* in its ``file_meta.TransferSyntaxUID``."""
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()

"""Transfer syntax <-> media type table of PS3.18 8.7.3 and Accept negotiation for WADO-RS.

PS3.18 Table 8.7.3-2 (``application/dicom``) and 8.7.3-3/-4 (bulk data and
frames: ``application/octet-stream`` for native pixels, the image/video types
for compressed pixels).
"""

from __future__ import annotations

from dataclasses import dataclass

from dicomweb.parsers import AcceptedType

EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
DEFLATED = "1.2.840.10008.1.2.1.99"
NATIVE = {EXPLICIT_LE, IMPLICIT_LE, EXPLICIT_BE, DEFLATED}

# Compressed transfer syntax -> media type of its frames (default syntax of each type first).
FRAME_MEDIA_TYPES = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx",
    "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
    "1.2.840.10008.1.2.5": "image/dicom-rle",
    "1.2.840.10008.1.2.4.100": "video/mpeg",
    "1.2.840.10008.1.2.4.101": "video/mpeg",
    "1.2.840.10008.1.2.4.102": "video/mp4",
    "1.2.840.10008.1.2.4.103": "video/mp4",
    "1.2.840.10008.1.2.4.104": "video/mp4",
    "1.2.840.10008.1.2.4.105": "video/mp4",
    "1.2.840.10008.1.2.4.106": "video/mp4",
    "1.2.840.10008.1.2.4.107": "video/H265",
    "1.2.840.10008.1.2.4.108": "video/H265",
}
# Default transfer syntax when a frame media type is asked for without transfer-syntax.
MEDIA_TYPE_DEFAULT_SYNTAX = {
    "image/jpeg": "1.2.840.10008.1.2.4.70",
    "image/jls": "1.2.840.10008.1.2.4.80",
    "image/jp2": "1.2.840.10008.1.2.4.90",
    "image/jpx": "1.2.840.10008.1.2.4.92",
    "image/jphc": "1.2.840.10008.1.2.4.201",
    "image/dicom-rle": "1.2.840.10008.1.2.5",
    "application/octet-stream": EXPLICIT_LE,
}


@dataclass(frozen=True)
class Choice:
    """A negotiated representation: part media type and transfer syntax ('*' = as stored)."""

    part_type: str
    transfer_syntax: str
    multipart: bool = True


def dicom_choices(accepted: list[AcceptedType]) -> list[Choice]:
    """Acceptable ``application/dicom`` representations in preference order (PS3.18 8.7.3.5.2).

    No Accept header, ``*/*`` or ``multipart/related`` without a type mean the default
    (Explicit VR Little Endian).  Returns ``[]`` when nothing acceptable was named.
    """
    if not accepted:
        return [Choice("application/dicom", EXPLICIT_LE)]
    out = []
    for item in accepted:
        if item.quality <= 0:
            continue
        syntax = item.transfer_syntax or EXPLICIT_LE
        if item.media_type in ("*/*", "multipart/*"):
            out.append(Choice("application/dicom", syntax))
        elif item.media_type == "multipart/related" and item.part_type in ("", "application/dicom", "application/*", "*/*"):
            out.append(Choice("application/dicom", syntax))
        elif item.media_type == "application/dicom":
            out.append(Choice("application/dicom", syntax, multipart=False))
    return out


def frame_choices(accepted: list[AcceptedType]) -> list[Choice]:
    """Acceptable frame/bulk representations in preference order (PS3.18 8.7.3.5.3/4).

    ``application/octet-stream`` without a syntax means native Explicit VR LE;
    ``transfer-syntax=*`` means as stored; an image type without a syntax
    accepts any syntax of that type (the stored one when it matches).
    """
    if not accepted:
        return [Choice("application/octet-stream", EXPLICIT_LE)]
    out = []
    for item in accepted:
        if item.quality <= 0:
            continue
        if item.media_type in ("*/*", "multipart/*"):
            out.append(Choice("*", item.transfer_syntax or "*"))
            continue
        if item.media_type == "multipart/related":
            part_type = item.part_type or "application/octet-stream"
        else:
            part_type = item.media_type
        if part_type in ("*/*", "*"):
            out.append(Choice("*", item.transfer_syntax or "*"))
        elif part_type in ("application/octet-stream",):
            out.append(Choice(part_type, item.transfer_syntax or EXPLICIT_LE))
        elif part_type in MEDIA_TYPE_DEFAULT_SYNTAX or part_type.startswith("video/") or part_type in (
            "image/*",
            "video/*",
        ):
            out.append(Choice(part_type, item.transfer_syntax or "*"))
    return out


def media_type_for(transfer_syntax: str) -> str:
    return FRAME_MEDIA_TYPES.get(transfer_syntax, "application/octet-stream")

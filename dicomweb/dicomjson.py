"""DICOM JSON Model (PS3.18 Annex F) for metadata responses and STOW-RS answers.

Metadata reads each file's header only (``stop_before_pixels``) and finds the
Pixel Data element from the file position where pydicom stopped, so pixels are
never loaded; binary elements above ``BULK_THRESHOLD`` (and Pixel Data always)
become a ``BulkDataURI`` that the bulkdata/frames resources serve.
"""

from __future__ import annotations

import base64
import struct
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset

BULK_THRESHOLD = 1024
_BINARY_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}
_PIXEL_TAGS = {0x7FE00008: "OF", 0x7FE00009: "OD", 0x7FE00010: "OW"}
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


def element_json(tag: int, vr: str, values: list | None) -> dict:
    """``{"vr": vr, "Value": [...]}`` (no ``Value`` for an empty attribute, PS3.18 F.2.5)."""
    item: dict = {"vr": vr}
    if values:
        item["Value"] = values
    return item


def tag_key(tag: int) -> str:
    return f"{tag:08X}"


def pixel_element_locate(path: Path) -> tuple[Dataset, dict | None]:
    """Header dataset of *path* and where its pixel data element lies.

    Returns ``(ds, info)``; *info* is None without pixel data, else
    ``{"tag", "vr", "value_offset", "length"}`` (length ``0xFFFFFFFF`` when
    encapsulated).
    """
    with open(path, "rb") as fh:
        ds = dcmread(fh, stop_before_pixels=True)
        start = fh.tell()
        head = fh.read(12)
    ts = str(ds.file_meta.get("TransferSyntaxUID", "1.2.840.10008.1.2.1"))
    if ts == "1.2.840.10008.1.2.1.99":
        # Deflated: the file position says nothing; inflate once to find the pixel element.
        full = dcmread(path)
        for tag in _PIXEL_TAGS:
            if tag in full:
                return ds, {"tag": tag, "vr": full[tag].VR, "value_offset": None, "length": len(full[tag].value)}
        return ds, None
    if len(head) < 8:
        return ds, None
    endian = ">" if ts == "1.2.840.10008.1.2.2" else "<"
    group, element = struct.unpack(endian + "HH", head[:4])
    tag = (group << 16) | element
    if tag not in _PIXEL_TAGS:
        return ds, None
    if ts == "1.2.840.10008.1.2":
        vr = "OW" if tag == 0x7FE00010 else _PIXEL_TAGS[tag]
        length, header_len = struct.unpack(endian + "L", head[4:8])[0], 8
    elif head[4:6] in _LONG_VRS:
        vr = head[4:6].decode()
        length, header_len = struct.unpack(endian + "L", head[8:12])[0], 12
    else:
        vr = head[4:6].decode("latin-1")
        length, header_len = struct.unpack(endian + "H", head[6:8])[0], 8
    return ds, {"tag": tag, "vr": vr, "value_offset": start + header_len, "length": length}


def dataset_json(ds: Dataset, *, bulk_uri: str | None, pixel: dict | None = None) -> dict:
    """DICOM JSON of *ds*: top-level binary values above the threshold as BulkDataURI.

    ``bulk_uri`` is the instance's ``.../bulkdata`` URL (``None``: everything inline).
    """
    result: dict = {}
    for elem in ds:
        if elem.tag.group == 0x0002:
            continue
        if elem.VR in _BINARY_VRS and bulk_uri and not elem.is_empty:
            value = elem.value
            if isinstance(value, (bytes, bytearray)) and len(value) > BULK_THRESHOLD:
                result[tag_key(elem.tag)] = {"vr": elem.VR, "BulkDataURI": f"{bulk_uri}/{tag_key(elem.tag)}"}
                continue
        try:
            result[tag_key(elem.tag)] = elem.to_json_dict(None, BULK_THRESHOLD)
        except Exception:
            # A value pydicom cannot convert (corrupt private data): send it raw, never fail.
            raw = elem.value if isinstance(elem.value, bytes) else str(elem.value).encode("utf-8", "replace")
            result[tag_key(elem.tag)] = {"vr": "UN", "InlineBinary": base64.b64encode(raw).decode()}
    if pixel is not None:
        key = tag_key(pixel["tag"])
        if bulk_uri:
            result[key] = {"vr": pixel["vr"], "BulkDataURI": f"{bulk_uri}/{key}"}
        else:
            result[key] = {"vr": pixel["vr"]}
    return result


def sequence_item(values: dict[int, tuple[str, list | None]]) -> dict:
    return {tag_key(tag): element_json(tag, vr, value) for tag, (vr, value) in values.items()}


__all__ = ["dataset_json", "pixel_element_locate", "element_json", "tag_key", "sequence_item"]

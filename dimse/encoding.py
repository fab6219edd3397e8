"""DIMSE messages without pydicom (PS3.5 7.1, PS3.7 6.3 and E, PS3.8 9.3.5 and E.2).

Data elements in little endian (implicit or explicit VR), DIMSE command sets
(encoding and reading) and P-DATA-TF framing, for the hot paths that bypass
pynetdicom's per-message pydicom work: the Q/R sub-operations
(:mod:`~dimse.handlers.query_retrieve.wire`) and C-STORE on the storage
listener (:mod:`~dimse.handlers.storage_wire`).  Every encoder is pinned byte
for byte to pynetdicom's/pydicom's by ``tests/dimse/test_qr_wire.py``."""

from __future__ import annotations

import struct
from collections.abc import Iterable

from pynetdicom.dimse_primitives import C_FIND, C_GET, C_MOVE, C_STORE

# Control header of a PDV (PS3.8 E.2): bit 0 command, bit 1 last fragment.
DATA, DATA_LAST, COMMAND, COMMAND_LAST = 0x00, 0x02, 0x01, 0x03
NODATA_SET, DATA_SET = 0x0101, 0x0001
# Explicit VR with a 4-byte length (PS3.5 7.1.2).
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
_PAD_NULL = {"UI", "OB", "UN"}
_TEXT_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}

# Command set elements (tag, VR) per keyword (PS3.7 E.1-1).
_COMMAND_ELEMENTS = {
    "AffectedSOPClassUID": (0x00000002, "UI"),
    "CommandField": (0x00000100, "US"),
    "MessageID": (0x00000110, "US"),
    "MessageIDBeingRespondedTo": (0x00000120, "US"),
    "MoveOriginatorApplicationEntityTitle": (0x00001030, "AE"),
    "MoveOriginatorMessageID": (0x00001031, "US"),
    "Priority": (0x00000700, "US"),
    "CommandDataSetType": (0x00000800, "US"),
    "Status": (0x00000900, "US"),
    "ErrorComment": (0x00000902, "LO"),
    "AffectedSOPInstanceUID": (0x00001000, "UI"),
    "NumberOfRemainingSuboperations": (0x00001020, "US"),
    "NumberOfCompletedSuboperations": (0x00001021, "US"),
    "NumberOfFailedSuboperations": (0x00001022, "US"),
    "NumberOfWarningSuboperations": (0x00001023, "US"),
}
_COUNTS = ("NumberOfRemainingSuboperations", "NumberOfCompletedSuboperations", "NumberOfFailedSuboperations",
           "NumberOfWarningSuboperations")
_RESPONSE_FIELDS = {C_FIND: (0x8020, ()), C_GET: (0x8010, _COUNTS), C_MOVE: (0x8021, _COUNTS)}


class WireError(ValueError):
    """A value this module does not encode; the caller falls back to pydicom/pynetdicom."""


# --- Encoding ------------------------------------------------------------------------------


def _text(vr: str, value: object) -> bytes:
    if isinstance(value, (list, tuple)):
        text = "\\".join(str(v) for v in value)
    else:
        text = str(value)
    data = text.encode("utf-8")  # ISO_IR 192 identifiers; ASCII for the other VRs
    if len(data) % 2:
        data += b"\0" if vr in _PAD_NULL else b" "
    return data


def element(tag: int, vr: str, value: object, *, implicit: bool = True) -> bytes:
    """One data element in little endian, implicit or explicit VR (PS3.5 7.1).

    Raises
    ------
    WireError
        A VR/value pair outside what index values and command sets use.
    """
    if vr == "SQ":
        raise WireError("sequences go through pydicom")
    if value is None or value == "" or value == []:
        data = b""
    elif vr == "US":
        values = value if isinstance(value, (list, tuple)) else [value]
        data = struct.pack(f"<{len(values)}H", *(int(v) for v in values))
    elif vr == "UL":
        data = struct.pack("<I", int(value))
    elif vr in _TEXT_VRS:
        data = _text(vr, value)
    else:
        raise WireError(f"no fast encoding for VR {vr}")
    if implicit:
        return struct.pack("<HHI", tag >> 16, tag & 0xFFFF, len(data)) + data
    vr_bytes = vr.encode("ascii")
    if vr_bytes in _LONG_VRS:
        return struct.pack("<HH2sxxI", tag >> 16, tag & 0xFFFF, vr_bytes, len(data)) + data
    if len(data) > 0xFFFF:
        raise WireError("value too long for a 2-byte length")
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr_bytes, len(data)) + data


_COMMAND_ORDER = sorted(_COMMAND_ELEMENTS, key=lambda keyword: _COMMAND_ELEMENTS[keyword][0])
_COMMAND_HEADERS = {keyword: struct.pack("<HH", tag >> 16, tag & 0xFFFF) for keyword, (tag, _) in
                    _COMMAND_ELEMENTS.items()}
_US_LENGTH = struct.pack("<I", 2)


def command_set(fields: dict[str, object]) -> bytes:
    """A DIMSE command set (implicit VR LE, PS3.7 6.3.1) of ``{keyword: value}``; ``None`` values left out."""
    out = []
    for keyword in _COMMAND_ORDER:
        value = fields.get(keyword)
        if value is None:
            continue
        if _COMMAND_ELEMENTS[keyword][1] == "US":
            out.append(_COMMAND_HEADERS[keyword] + _US_LENGTH + struct.pack("<H", value))
        else:
            data = _text(_COMMAND_ELEMENTS[keyword][1], value)
            out.append(_COMMAND_HEADERS[keyword] + struct.pack("<I", len(data)) + data)
    body = b"".join(out)
    return element(0x00000000, "UL", len(body)) + body


def identifier_bytes(items: Iterable[tuple[int, str, object]], *, implicit: bool) -> bytes:
    """An identifier of ``(tag, VR, value)`` items in tag order, encoded without pydicom.

    Raises
    ------
    WireError
        A sequence or a value of an unusual VR: use pydicom instead.
    """
    return b"".join(element(tag, vr, value, implicit=implicit) for tag, vr, value in items)


def fragments(parts: list, context_id: int, data, *, command: bool, max_pdu: int) -> None:
    """Append the P-DATA-TF PDUs carrying *data* to *parts*, one PDV each (PS3.8 9.3.5, E.2).

    *max_pdu* is the peer's Maximum Length Received (0: unlimited): the PDV
    item with its 4-byte length must fit, so each fragment holds at most
    ``max_pdu - 6`` bytes, as pynetdicom cuts them.
    """
    view = memoryview(data)
    size = len(view)
    step = size if not max_pdu else max_pdu - 6
    start = 0
    while True:
        chunk = view[start:start + step] if step else view
        start += len(chunk)
        last = start >= size
        header = (COMMAND_LAST if last else COMMAND) if command else (DATA_LAST if last else DATA)
        parts.append(struct.pack(">BxIIBB", 0x04, len(chunk) + 6, len(chunk) + 2, context_id, header))
        parts.append(chunk)
        if last:
            return


def response_command(primitive) -> bytes | None:
    """The command set of a C-FIND/C-GET/C-MOVE response, or ``None`` when pynetdicom should send it."""
    spec = _RESPONSE_FIELDS.get(type(primitive))
    if spec is None or getattr(primitive, "ErrorComment", None) is not None \
            or getattr(primitive, "OffendingElement", None) is not None:
        return None
    command_field, counts = spec
    fields = {
        "AffectedSOPClassUID": primitive.AffectedSOPClassUID,
        "CommandField": command_field,
        "MessageIDBeingRespondedTo": primitive.MessageIDBeingRespondedTo,
        "CommandDataSetType": DATA_SET if primitive.Identifier is not None else NODATA_SET,
        "Status": primitive.Status,
    }
    for name in counts:
        fields[name] = getattr(primitive, name)
    return command_set(fields)


def command_fields(data, start: int = 0) -> dict[int, bytes] | None:
    """``{element: value bytes}`` of a whole command set (implicit VR LE, group 0000; PS3.7 6.3.1).

    ``None`` when the bytes are not exactly a sequence of group 0000 elements.
    """
    fields: dict[int, bytes] = {}
    position, end = start, len(data)
    while position + 8 <= end:
        group, elem, length = struct.unpack_from("<HHI", data, position)
        position += 8
        if group != 0 or position + length > end:
            return None
        fields[elem] = bytes(data[position:position + length])
        position += length
    return fields if position == end else None


def store_response(primitive) -> tuple[int, C_STORE] | None:
    """``(context ID, C-STORE response)`` of a P-DATA holding a whole C-STORE-RSP command, else ``None``.

    Only Status and MessageIDBeingRespondedTo are kept (with ErrorComment):
    what a sub-operation needs.  Anything else - other messages, fragments,
    an OffendingElement - goes to pynetdicom.
    """
    values = primitive.presentation_data_value_list
    if len(values) != 1:
        return None
    context_id, data = values[0]
    if not data or data[0] != COMMAND_LAST:
        return None
    fields = command_fields(data, 1)
    if fields is None or fields.get(0x0100) != b"\x01\x80" or fields.get(0x0800) != b"\x01\x01":
        return None
    if 0x0901 in fields or len(fields.get(0x0900, b"")) != 2 or len(fields.get(0x0120, b"")) != 2:
        return None
    rsp = C_STORE()
    rsp.Status = struct.unpack("<H", fields[0x0900])[0]
    rsp.MessageIDBeingRespondedTo = struct.unpack("<H", fields[0x0120])[0]
    if 0x0902 in fields:
        rsp.ErrorComment = fields[0x0902].decode("ascii", "replace").rstrip(" \0")
    return context_id, rsp


def inner_fragments(parts: list, context_id: int, data: bytes, step: int) -> None:
    view = memoryview(data)
    for start in range(0, len(view), step):
        chunk = view[start:start + step]
        parts.append(struct.pack(">BxIIBB", 0x04, len(chunk) + 6, len(chunk) + 2, context_id, DATA))
        parts.append(chunk)


def store_request_command(sop_class: str, sop_instance: str, *, msg_id: int, priority: int = 2,
                          originator_aet: str | None = None, originator_id: int | None = None) -> bytes:
    """The command set of a C-STORE-RQ (PS3.7 9.3.1.1), with the move originator for C-MOVE sub-operations."""
    return command_set({
        "AffectedSOPClassUID": sop_class, "CommandField": 0x0001, "MessageID": msg_id, "Priority": priority,
        "CommandDataSetType": DATA_SET, "AffectedSOPInstanceUID": sop_instance,
        "MoveOriginatorApplicationEntityTitle": (originator_aet or "").strip() or None,
        "MoveOriginatorMessageID": originator_id,
    })


def store_response_command(sop_class: str, sop_instance: str, *, msg_id: int, status: int,
                           comment: str = "") -> bytes:
    """The command set of a C-STORE-RSP (PS3.7 9.3.1.2), with an Error Comment on a failure."""
    return command_set({
        "AffectedSOPClassUID": sop_class, "CommandField": 0x8001, "MessageIDBeingRespondedTo": msg_id,
        "CommandDataSetType": NODATA_SET, "Status": status, "AffectedSOPInstanceUID": sop_instance,
        "ErrorComment": comment.encode("ascii", "replace").decode("ascii")[:64] or None,
    })

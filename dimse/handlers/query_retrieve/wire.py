"""DIMSE messages of the Q/R hot paths written as ready-made PDUs (PS3.7 6.3, 9.3, E; PS3.8 9.3.5).

pynetdicom builds every message as a pydicom command ``Dataset``, encodes it,
cuts it into P-DATA primitives and hands them one by one to its DUL thread,
which turns each into a PDU object and encodes it again.  Profiled on the
bench: ~0.25 ms of CPU per message plus ~0.1 ms per PDU (a 512 KiB CT slice
is 32 PDUs at DCMTK's 16 KiB maximum), which capped C-GET near 150
instances/s and cost C-FIND ~1 ms per match.  Here the hot messages are
encoded directly: command sets with ``struct``, identifiers of index values
without pydicom, PDU headers around slices of the stored file; the bytes of a
whole message (or a batch of C-FIND responses) go through pynetdicom's own
send queue as **one** item, so ordering with the messages pynetdicom still
sends itself (final responses, release, abort) is kept.

* :func:`wire_enable` - once per association: the DUL writes our items as
  they are; C-FIND/C-GET/C-MOVE pending responses take the fast encoder,
  anything else (final responses with an identifier or a comment) falls back
  to pynetdicom; ``send_c_store`` sends stored files and transcoded datasets
  this way (:func:`store_send`).
* :class:`FindResponses` - C-FIND pending responses, each encoded in a few
  microseconds and written in batches.

Implicit and explicit VR little endian only; other syntaxes (deflate, big
endian) keep pynetdicom's path.  The encoders themselves are in
:mod:`~dimse.encoding`.
"""

from __future__ import annotations

import functools
import os
import struct
import threading
import time

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom.dimse_primitives import C_GET
from pynetdicom.dsutils import encode
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.pdu_primitives import P_DATA

from dimse.encoding import (
    DATA_SET,
    WireError,
    command_set,
    fragments,
    identifier_bytes,
    inner_fragments,
    response_command,
    store_request_command,
    store_response,
)
from dimse.statuses import PENDING, PROCESSING_FAILURE
from dimse.transport import socket_send_all
from pacs.matching import identifier_dataset

#: Syntaxes whose identifiers this module encodes itself.
WIRE_SYNTAXES = {ImplicitVRLittleEndian: True, ExplicitVRLittleEndian: False}  # uid -> implicit VR
#: A C-FIND batch is written once it holds this many bytes (and always after the first match).
FIND_BATCH_BYTES = 64 * 1024
#: A stored file is read and written in blocks of at most this size: memory stays bounded.
FILE_BLOCK_BYTES = 4 * 1024 * 1024
_FIRST_READ = 512  # preamble, DICM and the file meta group length: all that locating the data set needs

# --- Sending -----------------------------------------------------------------------------------


class Wire:
    """Whole PDUs written to the socket as they are: a list of buffers, or a region of a file.

    Travels in pynetdicom's send queue inside :class:`RawData`; the DUL thread
    calls :meth:`write` (see :func:`wire_enable`).
    """

    def __init__(self, parts: list | None = None, *, file=None, start: int = 0, length: int = 0,
                 context_id: int = 0, max_pdu: int = 0) -> None:
        self.parts = parts or []
        self.file, self.start, self.length = file, start, length
        self.context_id, self.max_pdu = context_id, max_pdu

    def write(self, sock) -> None:
        """Send everything on the pynetdicom ``AssociationSocket`` *sock* (DUL thread).

        A file is read block by block into one buffer kept on *sock* and sent
        with ``sendmsg`` straight from it, PDU headers in between: no copy of
        the data in Python, no new 512 KiB allocation per instance.
        """
        if self.file is None:
            socket_send_all(sock, self.parts)
            return
        step = max(self.max_pdu - 6, 1) if self.max_pdu else FILE_BLOCK_BYTES
        block = max(FILE_BLOCK_BYTES // step, 1) * step
        buffer = getattr(sock, "_pacs_buffer", None)
        if buffer is None or len(buffer) < min(block, self.length):
            buffer = bytearray(min(block, max(self.length, 1)))
            sock._pacs_buffer = buffer
        view = memoryview(buffer)
        try:
            self.file.seek(self.start)
            parts, remaining = self.parts, self.length
            if remaining <= 0:  # an empty data set still ends with a last fragment
                fragments(parts, self.context_id, b"", command=False, max_pdu=self.max_pdu)
                socket_send_all(sock, parts)
            while remaining > 0:
                size = self.file.readinto(view[:min(block, remaining, len(view))])
                if not size:
                    raise OSError("stored file shorter than when it was opened")
                remaining -= size
                if remaining > 0:  # an inner block: no fragment of it is the last one
                    inner_fragments(parts, self.context_id, view[:size], step)
                else:
                    fragments(parts, self.context_id, view[:size], command=False, max_pdu=self.max_pdu)
                socket_send_all(sock, parts)
                parts = []
        finally:
            self.file.close()


class RawData(P_DATA):
    """A P-DATA request whose only PDV is a :class:`Wire`: already whole PDUs."""

    def __init__(self, wire: Wire) -> None:
        super().__init__()
        self._presentation_data_value_list = [(0, wire)]


def wire_enable(assoc) -> None:
    """Switch *assoc* to the fast paths of this module (idempotent).

    * the DUL writes :class:`RawData` items as they are (``DT-1``/``AR-7`` call ``dul._send``);
    * ``dimse.send_msg`` encodes C-FIND/C-GET/C-MOVE responses itself;
    * ``dimse.receive_primitive`` reads a C-STORE response that arrives as one
      command PDV itself (pynetdicom decodes it with pydicom and validates its
      UIDs by regex: ~0.3 ms per sub-operation);
    * ``send_c_store`` is :func:`store_send`; a pending C-GET response is held
      and written with the next C-STORE request (any other message first
      writes it).
    """
    if getattr(assoc, "_pacs_wire", False):
        return
    dul, dimse = assoc.dul, assoc.dimse
    dul_send, dimse_send, dimse_receive = dul._send, dimse.send_msg, dimse.receive_primitive

    def _send(pdu) -> None:
        items = pdu.presentation_data_value_items if type(pdu) is P_DATA_TF else None
        if items and isinstance(items[0].presentation_data_value, Wire):
            items[0].presentation_data_value.write(dul.socket)
        else:
            dul_send(pdu)

    def send_msg(primitive, context_id: int) -> None:
        held, assoc._pacs_held = assoc._pacs_held, None
        if held:  # a pending C-GET response goes before anything else
            dul.send_pdu(RawData(Wire(held)))
        command = response_command(primitive) if primitive.MessageIDBeingRespondedTo is not None else None
        if command is None:
            dimse_send(primitive, context_id)
            return
        parts: list = []
        max_pdu = dimse.maximum_pdu_size
        fragments(parts, context_id, command, command=True, max_pdu=max_pdu)
        if primitive.Identifier is not None:
            fragments(parts, context_id, primitive.Identifier.getvalue(), command=False, max_pdu=max_pdu)
        if type(primitive) is C_GET and primitive.Status == PENDING and primitive.Identifier is None:
            # Written together with the next C-STORE request on this association (store_send):
            # one socket write and one DUL wake-up less per sub-operation.
            assoc._pacs_held = parts
            return
        dul.send_pdu(RawData(Wire(parts)))

    def receive_primitive(primitive) -> None:
        rsp = store_response(primitive) if dimse.message is None else None
        if rsp is None:
            dimse_receive(primitive)
        else:
            dimse.msg_queue.put(rsp)

    def send_c_store(dataset, msg_id=1, priority=2, originator_aet=None, originator_id=None):
        return store_send(assoc, dataset, msg_id=msg_id, priority=priority, originator_aet=originator_aet,
                          originator_id=originator_id)

    assoc._pacs_held = None
    dul._send = _send
    dimse.send_msg = send_msg
    dimse.receive_primitive = receive_primitive
    assoc.send_c_store = send_c_store
    assoc._pacs_wire = True


# --- C-STORE sub-operations ------------------------------------------------------------------


class StoredFile(Dataset):
    """Stands for an archived file sent as stored: what the C-STORE needs, plus the path.

    pynetdicom's C-GET/C-MOVE code only accepts ``Dataset`` yields; with
    :func:`wire_enable` the file's bytes go from disk to socket undecoded.
    """


def _raw_uid(tag: int, uid: str) -> RawDataElement:
    value = uid.encode("ascii")
    if len(value) % 2:
        value += b"\0"
    return RawDataElement(Tag(tag), "UI", len(value), value, 0, True, True)


def stored_file(sop_class_uid: str, sop_instance_uid: str, transfer_syntax_uid: str, path) -> StoredFile:
    """A :class:`StoredFile`; its UIDs stay raw (pydicom validates them only if read: a failed sub-operation)."""
    ds = StoredFile()
    ds._dict[Tag(0x00080016)] = _raw_uid(0x00080016, sop_class_uid)
    ds._dict[Tag(0x00080018)] = _raw_uid(0x00080018, sop_instance_uid)
    ds._pacs_uids = (sop_class_uid, sop_instance_uid)
    ds._pacs_syntax = transfer_syntax_uid
    ds._pacs_path = path
    return ds


def _context_id(assoc, sop_class: str, syntax: str) -> int | None:
    cache = getattr(assoc, "_pacs_store_contexts", None)
    if cache is None:
        cache = {}
        for cx in assoc.accepted_contexts:
            if cx.as_scu:
                cache.setdefault((str(cx.abstract_syntax), str(cx.transfer_syntax[0])), cx.context_id)
        assoc._pacs_store_contexts = cache
    return cache.get((sop_class, syntax))


def _dataset_offset(head: bytes, path) -> int:
    """Offset of the data set after the file meta (PS3.10 7.1: preamble, DICM, group 0002 with its length)."""
    if len(head) >= 144 and head[128:132] == b"DICM" and head[132:136] == b"\x02\x00\x00\x00":
        vr = head[136:138]
        if vr == b"UL":  # explicit VR, as PS3.10 requires for the file meta
            return 144 + struct.unpack("<I", head[140:144])[0]
    from pynetdicom.dsutils import (
        split_dataset,  # no group length: let pydicom walk the meta
    )

    return split_dataset(path)[1]


def association_alive(assoc) -> bool:
    """Still able to carry a sub-operation: established, DUL running, no abort waiting to be noticed.

    A requestor association parked by :func:`store_send` does not update
    ``is_established`` itself when the peer aborts, hence the look at the DUL.
    """
    return assoc.is_established and assoc.dul.is_alive() and not assoc.acse.is_aborted()


def _settle(assoc) -> None:
    """Let a parked requestor's reactor notice the abort/timeout and end, so a later release() is a no-op."""
    if assoc.is_requestor:
        assoc._reactor_checkpoint.set()
        if assoc is not threading.current_thread():
            assoc.join(timeout=5)


@functools.lru_cache(maxsize=64)
def _status_only(status: int) -> Dataset:
    """The response status *status* alone (one shared, read-only dataset per code)."""
    ds = Dataset()
    ds.Status = status
    return ds


def store_preload(assoc, dataset: Dataset) -> None:
    """Read a :class:`StoredFile` of at most one block and frame its data PDUs ahead of :func:`store_send`.

    Called during the previous sub-operation's round trip
    (:class:`~dimse.handlers.query_retrieve.retrieve.ReadAhead`), so the
    next request goes out without a file read on the critical path.  Larger
    files, and any read error, are left to :func:`store_send` (it streams, and
    raises where the sub-operation is counted).
    """
    if not isinstance(dataset, StoredFile):
        return
    context_id = _context_id(assoc, dataset._pacs_uids[0], dataset._pacs_syntax)
    if context_id is None:
        return
    max_pdu = assoc.dimse.maximum_pdu_size
    try:
        with open(dataset._pacs_path, "rb", buffering=0) as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > FILE_BLOCK_BYTES:
                return
            data = handle.read(size)
    except OSError:
        return
    if len(data) != size:
        return
    offset = _dataset_offset(data[:_FIRST_READ], dataset._pacs_path)
    parts: list = []
    fragments(parts, context_id, memoryview(data)[offset:], command=False, max_pdu=max_pdu)
    dataset._pacs_preloaded = ((context_id, max_pdu), parts)


def store_send(assoc, dataset: Dataset, *, msg_id: int, priority: int = 2, originator_aet=None,
               originator_id=None) -> Dataset:
    """C-STORE one instance on *assoc* and wait for the response (PS3.4 B.2, PS3.7 9.1.1).

    *dataset* is a :class:`StoredFile` (sent from the file as stored) or a
    ``Dataset`` with ``file_meta.TransferSyntaxUID`` (encoded by pydicom).
    While the response is awaited, ``assoc._pacs_read_ahead()`` is called when
    set (:class:`~dimse.handlers.query_retrieve.retrieve.ReadAhead`).

    Returns
    -------
    Dataset
        The response status (``Status`` and any status fields of the response);
        a failure status when the association drops or times out.

    Raises
    ------
    ValueError
        No accepted presentation context for the SOP class and syntax
        (pynetdicom's own ``send_c_store`` raises the same; C-GET/C-MOVE count
        the sub-operation failed).
    OSError
        The stored file cannot be read.
    """
    if not association_alive(assoc):
        _settle(assoc)
        return _status_only(PROCESSING_FAILURE)
    stored = isinstance(dataset, StoredFile)
    if stored:
        sop_class, sop_instance = dataset._pacs_uids
    else:
        sop_class, sop_instance = str(dataset.SOPClassUID), str(dataset.SOPInstanceUID)
    syntax = dataset._pacs_syntax if stored else str(dataset.file_meta.TransferSyntaxUID)
    context_id = _context_id(assoc, sop_class, syntax)
    if context_id is None:
        raise ValueError(f"no accepted presentation context for {sop_class} in {syntax}")
    command = store_request_command(sop_class, sop_instance, msg_id=msg_id, priority=priority,
                                    originator_aet=originator_aet, originator_id=originator_id)
    max_pdu = assoc.dimse.maximum_pdu_size
    parts: list = []
    fragments(parts, context_id, command, command=True, max_pdu=max_pdu)
    preloaded = getattr(dataset, "_pacs_preloaded", None) if stored else None
    if preloaded is not None and preloaded[0] == (context_id, max_pdu):
        wire = Wire(parts + preloaded[1])
    elif stored:
        handle = open(dataset._pacs_path, "rb", buffering=0)  # noqa: SIM115 - the DUL thread closes it after writing
        try:
            size = os.fstat(handle.fileno()).st_size
            offset = _dataset_offset(handle.read(_FIRST_READ), dataset._pacs_path)
        except BaseException:
            handle.close()
            raise
        wire = Wire(parts, file=handle, start=offset, length=size - offset, context_id=context_id, max_pdu=max_pdu)
    else:
        implicit = syntax == ImplicitVRLittleEndian
        little = syntax != "1.2.840.10008.1.2.2"
        encoded = encode(dataset, implicit, little, syntax == "1.2.840.10008.1.2.1.99")
        if encoded is None:
            raise ValueError("dataset could not be encoded")
        fragments(parts, context_id, encoded, command=False, max_pdu=max_pdu)
        wire = Wire(parts)
    if assoc.is_requestor and assoc._reactor_checkpoint.is_set():
        # The requestor's reactor would take our response off the queue: park it until release.
        assoc._reactor_checkpoint.clear()
        while not assoc._is_paused:
            time.sleep(0.0001)
    held, assoc._pacs_held = getattr(assoc, "_pacs_held", None), None
    if held:  # the pending C-GET response before this request, in the same write
        wire.parts = held + wire.parts
    assoc.dul.send_pdu(RawData(wire))
    read_ahead = getattr(assoc, "_pacs_read_ahead", None)
    if read_ahead is not None:
        read_ahead()  # prepare the next sub-operation while the peer stores this one
    _, rsp = assoc.dimse.get_msg(block=True)
    if rsp is None:
        if assoc.is_established and not assoc.acse.is_aborted():
            assoc.abort()  # DIMSE timeout: as pynetdicom's send_c_store does
        _settle(assoc)
        return _status_only(PROCESSING_FAILURE)
    code = rsp.Status if rsp.Status is not None else PROCESSING_FAILURE
    extra = {name: getattr(rsp, name, None) for name in ("ErrorComment", "OffendingElement")}
    if not any(value is not None for value in extra.values()):
        return _status_only(code)  # shared per code: callers only read Status
    status = Dataset()
    status.Status = code
    for name, value in extra.items():
        if value is not None:
            setattr(status, name, value)
    return status


# --- C-FIND responses ---------------------------------------------------------------------------


class FindResponses:
    """Pending C-FIND responses (PS3.4 C.4.1.2.2) encoded here and written in batches.

    The command set is the same for every pending response of a request, so
    it is encoded once; each match costs one identifier encoding and two PDU
    headers.  The first response is written at once, later ones every
    :data:`FIND_BATCH_BYTES` and at :meth:`flush`.  The final response stays
    with pynetdicom (it follows the batches in the same queue).
    """

    def __init__(self, event, status: int) -> None:
        assoc = event.assoc
        wire_enable(assoc)
        self.assoc = assoc
        self.context_id = event.context.context_id
        self.implicit = WIRE_SYNTAXES[event.context.transfer_syntax]
        self.max_pdu = assoc.dimse.maximum_pdu_size
        command = command_set({
            "AffectedSOPClassUID": event.request.AffectedSOPClassUID, "CommandField": 0x8020,
            "MessageIDBeingRespondedTo": event.request.MessageID, "CommandDataSetType": DATA_SET,
            "Status": status,
        })
        self.command: list = []
        fragments(self.command, self.context_id, command, command=True, max_pdu=self.max_pdu)
        self.parts: list = []
        self.size = 0
        self.sent = 0

    @staticmethod
    def supported(event) -> bool:
        return event.context.transfer_syntax in WIRE_SYNTAXES

    def add(self, items: list[tuple[int, str, object]]) -> None:
        """Queue the pending response of one match (``(tag, VR, value)`` items in tag order)."""
        try:
            identifier = identifier_bytes(items, implicit=self.implicit)
        except WireError:
            identifier = encode(identifier_dataset(items), self.implicit, True, False)
        self.parts.extend(self.command)
        fragments(self.parts, self.context_id, identifier, command=False, max_pdu=self.max_pdu)
        self.size += len(identifier) + 100
        if self.sent == 0 or self.size >= FIND_BATCH_BYTES:
            self.flush()

    def flush(self) -> None:
        if self.parts:
            self.assoc.dul.send_pdu(RawData(Wire(self.parts)))
            self.sent += 1
        self.parts, self.size = [], 0

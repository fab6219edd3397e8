"""C-STORE on the storage listener without pynetdicom's per-message machinery (PS3.7 9.1.1, PS3.8 9.3.5).

For every C-STORE-RQ pynetdicom decodes each P-DATA-TF PDU into objects,
copies the fragments into a message buffer, decodes the command set with
pydicom (validating UIDs by regex), hands the message to a second thread,
builds an event, and encodes the response command with pydicom before the DUL
thread frames and sends it: measured with a do-nothing handler and DCMTK
``storescu``, ~2 ms of CPU per instance - as much as the archive's own work.

:func:`storage_wire_enable` replaces the DUL's PDU reader of an association
on the storage listener.  While the association is established (Sta6) a
P-DATA-TF PDU whose first PDV is a whole C-STORE-RQ command for an accepted
storage context starts a *fast message*: its data set fragments are kept as
views of the received PDUs, and once the last one is in, the DUL thread itself
archives the instance (:func:`~dimse.handlers.storage.store_received`, the
same function pynetdicom's handler calls) and writes the C-STORE-RSP, built
with :mod:`dimse.encoding`, straight to the socket.  A C-STORE answer is only
ever written after the archive answered, as on pynetdicom's path.

Everything else - other PDUs and messages, a command split into fragments, a
SOP class pynetdicom would not route to the Storage Service, a message
pynetdicom is already assembling - goes to pynetdicom exactly as it arrived,
so association handling (release, abort, C-ECHO, timers) stays pynetdicom's.
A PDV that breaks the framing rules in the middle of a fast message is an
invalid PDU (Evt19: pynetdicom aborts the association), as it would be there.

A data set larger than ``PACS_STORE_SPILL_MB`` is not held in memory: past
that size its fragments go to a temp file on the archive volume (checksum kept as
it grows), which ingest then moves into place - a multi-gigabyte video or
whole-slide image needs neither its size in RAM nor a second copy on disk.
"""

from __future__ import annotations

import logging
import struct
from functools import lru_cache

from django.conf import settings
from pynetdicom.pdu_primitives import P_DATA
from pynetdicom.service_class import StorageServiceClass
from pynetdicom.sop_class import uid_to_service_class

from dimse.db import db_release
from dimse.encoding import COMMAND_LAST, command_fields, fragments, store_response_command
from dimse.transport import socket_send_all
from pacs import storage
from pacs.exceptions import OutOfResources
from pacs.services.config import archive_config_get
from pacs.services.ingest import SpooledFile

logger = logging.getLogger(__name__)

_PDU_TYPES = frozenset(range(0x01, 0x08))
#: Status of a failure the handler did not foresee (pynetdicom's "exception in handler").
_HANDLER_EXCEPTION = 0xC211


@lru_cache(maxsize=1024)
def _storage_class(uid: str) -> bool:
    """Whether pynetdicom would serve a C-STORE of SOP Class *uid* with its Storage Service."""
    return uid_to_service_class(uid) is StorageServiceClass


def _text(value: bytes) -> str:
    return value.decode("ascii").rstrip("\0 ")


class _FastMessage:
    __slots__ = ("chunks", "context_id", "error", "message_id", "size", "sop_class_uid", "sop_instance_uid",
                 "spool", "transfer_syntax")

    def __init__(self, context_id: int, message_id: int, sop_class_uid: str, sop_instance_uid: str,
                 transfer_syntax: str) -> None:
        self.context_id, self.message_id = context_id, message_id
        self.sop_class_uid, self.sop_instance_uid = sop_class_uid, sop_instance_uid
        self.transfer_syntax = transfer_syntax
        self.chunks: list = []
        self.size = 0
        self.spool: storage.Spool | None = None
        self.error: tuple[int, str] | None = None  # a failed spool write: answered once the data set is in

    def discard(self) -> None:
        self.chunks = []
        if self.spool is not None:
            self.spool.discard()
            self.spool = None


class StorageWire:
    """The fast C-STORE path of one association; its :meth:`read_pdu` is the DUL's PDU reader."""

    def __init__(self, assoc, store) -> None:
        self.assoc, self.dul, self.store = assoc, assoc.dul, store
        self.pynetdicom_read = self.dul._read_pdu_data
        self.message: _FastMessage | None = None

    # --- Reading ------------------------------------------------------------------------------
    def read_pdu(self) -> None:
        dul = self.dul
        if dul.state_machine.current_state != "Sta6" or self.assoc.acceptor.accepted_common_extended:
            self.pynetdicom_read()
            return
        sock = dul.socket
        try:
            head = sock.recv(6)
        except (OSError, TimeoutError):
            logger.error("connection closed before the entire PDU was received")
            dul.event_queue.put("Evt17")
            return
        if len(head) != 6:
            dul.event_queue.put("Evt17")  # transport connection closed
            return
        pdu_type, _, length = struct.unpack(">BBL", head)
        if pdu_type not in _PDU_TYPES:
            logger.error("unknown PDU type received 0x%02X", pdu_type)
            dul.event_queue.put("Evt19")
            return
        try:
            body = sock.recv(length)
        except (OSError, TimeoutError):
            logger.error("connection closed before the entire PDU was received")
            dul.event_queue.put("Evt17")
            return
        if len(body) != length:
            dul.event_queue.put("Evt17")
            return
        if pdu_type == 0x04 and self._p_data(body):
            return
        self._to_pynetdicom_pdu(head + body)

    def _to_pynetdicom_pdu(self, data: bytes) -> None:
        """What pynetdicom's reader does with a whole PDU it read itself."""
        dul = self.dul
        try:
            pdu, event = dul._decode_pdu(bytearray(data))
        except Exception:
            logger.exception("unable to decode the received PDU")
            dul.event_queue.put("Evt19")
            return
        dul.event_queue.put(event)
        dul._recv_pdu.put(pdu)

    def _p_data(self, body: bytearray) -> bool:
        """Take the PDVs of a P-DATA-TF PDU; ``False``: none taken, pynetdicom gets the whole PDU."""
        items = _pdv_items(body)
        if items is None:  # malformed: pynetdicom reports it (or it breaks a fast message: abort)
            if self.message is None:
                return False
            self._invalid("malformed P-DATA-TF PDU in a C-STORE data set")
            return True
        index = 0
        if self.message is None:
            if self.assoc.dimse.message is not None or not self._begin(items[0]):
                return False
            index = 1
        while index < len(items):
            context_id, control, data = items[index]
            message = self.message
            if message is None:
                if self._begin(items[index]):
                    index += 1
                    continue
                self._to_pynetdicom_items(items[index:])
                return True
            if control & 0x01 or context_id != message.context_id:
                self._invalid("a PDV of another message arrived inside a C-STORE data set")
                return True
            self._append(message, data)
            if control & 0x02:
                self.message = None
                self._store(message)
            index += 1
        return True

    def _append(self, message: _FastMessage, data: memoryview) -> None:
        """Keep a data set fragment: in memory, or - past ``PACS_STORE_SPILL_MB`` - in a temp file."""
        if message.error is not None:
            return  # the rest of a data set that cannot be stored is read and dropped
        try:
            if message.spool is not None:
                message.spool.write(data)
                return
            message.chunks.append(data)
            message.size += len(data)
            if message.size > settings.PACS_STORE_SPILL_MB * 1024 * 1024:
                from dimse.handlers.storage import part10_header

                storage.free_space_check(archive_config_get().min_free_mb)  # before, not after, a big write
                message.spool = spool = storage.Spool()
                spool.write(part10_header(message.sop_class_uid, message.sop_instance_uid, message.transfer_syntax))
                for chunk in message.chunks:
                    spool.write(chunk)
                message.chunks = []
        except ValueError:
            message.discard()
            message.error = (0xA900, "SOP Class or Instance UID is not valid")
        except OutOfResources as exc:
            message.discard()
            message.error = (exc.dicom_status, exc.message[:64])
        except OSError as exc:
            logger.error("c-store spool write failed sop_instance_uid=%s: %s", message.sop_instance_uid, exc)
            message.discard()
            message.error = (storage.write_failure_status(exc), f"Cannot write to the archive: {exc.strerror or exc}")

    def discard(self) -> None:
        """The association ended: drop a data set still arriving (and its temp file)."""
        if self.message is not None:
            self.message.discard()
            self.message = None

    def _begin(self, item: tuple) -> bool:
        """Start a fast message if *item* is a whole C-STORE-RQ command this path can serve."""
        context_id, control, data = item
        if control != COMMAND_LAST:
            return False
        fields = command_fields(data)
        if fields is None or fields.get(0x0100) != b"\x01\x00" or fields.get(0x0800, b"\x01\x01") == b"\x01\x01":
            return False
        context = self.assoc._accepted_cx.get(context_id)
        try:
            message_id = struct.unpack("<H", fields[0x0110])[0]
            sop_class_uid = _text(fields[0x0002])
            sop_instance_uid = _text(fields[0x1000])
        except (KeyError, struct.error, UnicodeDecodeError):
            return False
        if context is None or not sop_class_uid or not _storage_class(sop_class_uid):
            return False
        self.message = _FastMessage(context_id, message_id, sop_class_uid, sop_instance_uid,
                                    str(context.transfer_syntax[0]))
        return True

    def _to_pynetdicom_items(self, items: list) -> None:
        """Hand PDVs following a fast message in the same PDU to pynetdicom's DIMSE (as its DT-2 does)."""
        primitive = P_DATA()
        primitive.presentation_data_value_list = [
            [context_id, bytes([control]) + bytes(data)] for context_id, control, data in items
        ]
        self.assoc.dimse.receive_primitive(primitive)

    def _invalid(self, reason: str) -> None:
        logger.error("%s: aborting the association", reason)
        self.message = None
        self.dul.event_queue.put("Evt19")  # invalid PDU: pynetdicom sends A-ABORT

    # --- Archiving and answering ------------------------------------------------------------
    def _store(self, message: _FastMessage) -> None:
        from dimse.handlers.storage import part10

        status, comment = message.error or (None, "")
        if status is None:
            spooled = None
            try:
                if message.spool is not None:
                    spooled = SpooledFile(message.spool.path, message.spool.finish())
                    message.spool = None
                    data = spooled
                else:
                    data = part10(message.sop_class_uid, message.sop_instance_uid, message.transfer_syntax,
                                  message.chunks)
                    message.chunks = []
                status, comment = self._archive(data)
            except ValueError:  # raised by part10 only: _archive answers every failure of the archive
                status, comment = 0xA900, "SOP Class or Instance UID is not valid"
            except OSError as exc:  # the spool's last flush
                status, comment = 0x0110, f"Cannot write to the archive: {exc.strerror or exc}"
            finally:
                message.discard()
                if spooled is not None:
                    spooled.path.unlink(missing_ok=True)  # still there: not archived (refused or failed)
        self._answer(message, status, comment)

    def _archive(self, data) -> tuple[int, str]:
        """``self.store``'s answer; a failure it did not foresee is 0x0110 / 0xC211, never a dead association."""
        try:
            return self.store(self.assoc, data)
        except OSError as exc:
            return 0x0110, f"Cannot write to the archive: {exc.strerror or exc}"
        except Exception:
            logger.exception("c-store handler failed calling_aet=%s", self.assoc.requestor.ae_title)
            return _HANDLER_EXCEPTION, "Unexpected failure storing the instance"

    def _answer(self, message: _FastMessage, status: int, comment: str) -> None:
        command = store_response_command(message.sop_class_uid, message.sop_instance_uid,
                                         msg_id=message.message_id, status=status, comment=comment)
        parts: list = []
        fragments(parts, message.context_id, command, command=True, max_pdu=self.assoc.dimse.maximum_pdu_size)
        socket_send_all(self.dul.socket, parts)


def _pdv_items(body: bytearray) -> list | None:
    """``[(context ID, control header, data view)]`` of a P-DATA-TF body, ``None`` if malformed."""
    view = memoryview(body)
    items = []
    position, end = 0, len(body)
    while position < end:
        if position + 6 > end:
            return None
        length = struct.unpack_from(">I", body, position)[0]
        if length < 2 or position + 4 + length > end:
            return None
        items.append((body[position + 4], body[position + 5], view[position + 6:position + 4 + length]))
        position += 4 + length
    return items or None


def storage_wire_enable(assoc, store) -> None:
    """Give *assoc* (created, threads not started) the fast C-STORE path; *store* archives one instance.

    The DUL thread archives instances itself, so its own database connection
    is closed when the thread ends.
    """
    wire = StorageWire(assoc, store)
    dul = assoc.dul
    dul._read_pdu_data = wire.read_pdu
    run = dul._target  # Thread target set by pynetdicom: the DUL reactor loop

    def run_and_release() -> None:
        try:
            run()
        finally:
            wire.discard()
            db_release()

    dul._target = run_and_release


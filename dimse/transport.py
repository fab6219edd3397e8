"""Low-latency plumbing for pynetdicom associations (pinned pynetdicom 3.0.x).

pynetdicom's two per-association threads poll: the DUL thread sleeps 1 ms
whenever a loop found nothing to do and then checks the socket with a zero
timeout, and the association reactor sleeps 1 ms before each look at its
message queue.  A C-STORE round trip crosses three such polls (request in,
handler, response out), so a single association spent 1.5-3 ms per instance
sleeping (measured with a do-nothing storage handler and DCMTK storescu:
~210 -> ~280 instances/s with :func:`association_low_latency`).

Here the waits become blocking waits that wake on the event itself:

* the DUL thread blocks in ``select`` on the peer socket **and** a wake-up
  socket pair that :meth:`DULServiceProvider.send_pdu` pokes whenever a
  primitive is queued for sending (bounded by :data:`POLL_SECONDS` so
  timers and kill requests are still seen promptly);
* the acceptor's reactor blocks on its DIMSE message queue for up to
  :data:`REACTOR_POLL_SECONDS` instead of sleeping before a non-blocking read, and
  the peer's A-RELEASE-RQ ends that wait (found by the Q/R work: findscu
  54 -> 42 ms end to end).
  Only acceptor associations get this: a requestor's ``send_*`` calls pause
  the reactor from another thread and would wait for that block to end.

Reads use ``recv_into`` one buffer instead of 4 KiB slices appended one by
one (128 Python calls per 512 KiB slice, all holding the GIL).

:func:`contexts_share_uids` makes pynetdicom's per-association deep copy of
the supported presentation contexts cheap.
"""

from __future__ import annotations

import functools
import queue
import select
import socket
import threading
import time

from pydicom.uid import UID
from pynetdicom import association as pynetdicom_association
from pynetdicom import dul as pynetdicom_dul
from pynetdicom.pdu_primitives import A_ABORT, A_P_ABORT, A_RELEASE
from pynetdicom.presentation import PresentationContext
from pynetdicom.transport import AssociationSocket

#: Longest the DUL thread sleeps before re-checking timers and kill flags.
POLL_SECONDS = 0.01
#: Longest an acceptor's reactor waits for a DIMSE message before its checks (network
#: timeout, dead DUL): release, abort and closed connections wake it at once.
REACTOR_POLL_SECONDS = 0.1


class PacsAssociationSocket(AssociationSocket):
    """An :class:`AssociationSocket` whose ``ready`` blocks until data or a wake-up."""

    _wake_r: socket.socket
    _wake_w: socket.socket

    def wake_init(self) -> None:
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)

    def wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:  # buffer full (already awake) or closed at shutdown
            pass

    @property
    def ready(self) -> bool:
        if self.socket is None or self._is_connected is False:
            return False
        dul = self.assoc.dul
        # Work already queued for the DUL thread: look at the socket without waiting.
        busy = not dul.event_queue.empty() or not dul.to_provider_queue.empty()
        try:
            readable, _, _ = select.select([self.socket, self._wake_r], [], [], 0 if busy else POLL_SECONDS)
        except (OSError, ValueError):
            self.event_queue.put("Evt17")  # transport connection closed
            return False
        if self._wake_r in readable:
            try:
                self._wake_r.recv(4096)
            except OSError:
                pass
        return self.socket in readable

    def recv(self, nr_bytes: int) -> bytearray:
        buffer = bytearray(nr_bytes)
        view = memoryview(buffer)
        received = 0
        while received < nr_bytes:
            count = self.socket.recv_into(view[received:], nr_bytes - received)
            if not count:  # connection closed: return what arrived, as pynetdicom does
                del view
                return buffer[:received]
            received += count
        return buffer


IOV_MAX = 1024


def socket_send_all(sock, buffers: list) -> None:
    """``sendmsg`` every buffer, resuming after partial sends; a socket error is Evt17 as in pynetdicom."""
    raw = sock.socket
    try:
        index = 0
        while index < len(buffers):
            sent = raw.sendmsg(buffers[index:index + IOV_MAX])
            while index < len(buffers) and sent >= len(buffers[index]):
                sent -= len(buffers[index])
                index += 1
            if sent:
                buffers[index] = memoryview(buffers[index])[sent:]
    except Exception:  # noqa: BLE001 - pynetdicom's AssociationSocket.send treats any failure the same way
        sock.event_queue.put("Evt17")  # transport connection closed


class _DulTime:
    """``time`` as pynetdicom's DUL module sees it: ``sleep(0)`` returns at once.

    The DUL loop sleeps ``_run_loop_delay`` (0 here: :meth:`PacsAssociationSocket.ready`
    blocks instead) after every pass that found no event - for a C-STORE, once per
    received PDU.  ``time.sleep(0)`` still gives up the GIL, and taking it back
    waits for whichever thread holds it (up to the 5 ms switch interval).
    Store, 4 associations, 2 processes: server CPU 3.20 -> 3.08 ms per instance
    (medians of 5 runs).
    """

    @staticmethod
    def sleep(seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class _AssociationTime:
    """``time`` as pynetdicom's association module sees it: an acceptor's reactor skips its 1 ms nap.

    The reactor sleeps 1 ms before every look at its message queue, so the
    first request of an association - and each request after another on the
    same association - waited for it (echo RQ to RSP ~1.1 ms of 1.8).  An
    acceptor switched by :func:`association_low_latency` waits in its queue
    instead (:class:`_ReactorQueue`); every other sleep is unchanged.
    """

    @staticmethod
    def sleep(seconds: float) -> None:
        if seconds == 0.001 and getattr(threading.current_thread(), "_pacs_blocking_reactor", False):
            return
        time.sleep(seconds)


class _ReactorQueue(queue.Queue):
    """DIMSE message queue whose non-blocking ``get`` (the reactor's poll) waits briefly."""

    def get(self, block: bool = True, timeout: float | None = None):
        if not block:
            return super().get(True, REACTOR_POLL_SECONDS)
        return super().get(block, timeout)


def association_low_latency(assoc, *, acceptor: bool) -> None:
    """Switch a freshly created association (socket set, threads not started) to blocking waits."""
    dul = assoc.dul
    pynetdicom_dul.time = _DulTime  # process-wide; only a zero delay behaves differently
    sock = dul.socket
    sock.__class__ = PacsAssociationSocket
    sock.wake_init()
    dul._run_loop_delay = 0
    queue_for_sending = dul.send_pdu

    def send_pdu(primitive) -> None:
        queue_for_sending(primitive)
        sock.wake()

    def stop_dul() -> bool:
        # pynetdicom's own waits for the DUL thread by calling sleep(_run_loop_delay)
        # in a loop: a spin holding the GIL for up to POLL_SECONDS with a zero delay.
        if dul.state_machine.current_state != "Sta1":
            return False
        dul._kill_thread = True
        sock.wake()
        if threading.current_thread() is not dul:
            dul.join()
        return True

    dul.send_pdu = send_pdu
    dul.stop_dul = stop_dul
    if acceptor:
        assoc.dimse.msg_queue = msg_queue = _ReactorQueue()
        pynetdicom_association.time = _AssociationTime  # process-wide; acts only in such reactors
        assoc._pacs_blocking_reactor = True
        # The reactor looks for the peer's A-RELEASE-RQ only when its wait on
        # the DIMSE queue ends: an empty (None, None) item - what pynetdicom
        # itself queues on an abort (AA-2/3/4) - ends it at once.
        to_user_put = dul.to_user_queue.put

        def put_and_wake(item, *args, **kwargs) -> None:
            to_user_put(item, *args, **kwargs)
            if isinstance(item, (A_RELEASE, A_ABORT, A_P_ABORT)):
                msg_queue.put((None, None))

        dul.to_user_queue.put = put_and_wake


# --- Cheap per-association copies of the supported contexts -----------------------


class SharedUID(UID):
    """A UID that ``deepcopy`` shares instead of rebuilding (a ``str``: immutable)."""

    def __deepcopy__(self, memo) -> SharedUID:
        return self

    def __copy__(self) -> SharedUID:
        return self


class SyntaxList(list):
    """A transfer syntax list whose deep copy is a plain copy (its items are immutable)."""

    def __deepcopy__(self, memo) -> SyntaxList:
        return SyntaxList(self)


class _CheapCopyContext(PresentationContext):
    """A supported context whose per-association deep copy is one flat copy.

    Its attributes are scalars, immutable UIDs and one list of UIDs, so copying
    the instance dict and that list is a complete, independent copy.
    """

    def __deepcopy__(self, memo) -> _CheapCopyContext:
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone._transfer_syntax = SyntaxList(self._transfer_syntax)
        return clone


def contexts_share_uids(ae) -> None:
    """Make the per-association copy of *ae*'s supported contexts cheap.

    pynetdicom deep-copies every supported context for each new association;
    rebuilding (and regex-validating) the ~3,000 UIDs of 120 storage classes x
    25 syntaxes cost ~120 ms of CPU per association, and the generic deep copy
    of the context objects still ~5 ms.  Shared immutable UIDs and a flat copy
    per context bring it well under 1 ms.
    """
    for cx in ae.supported_contexts:
        if not isinstance(cx._abstract_syntax, SharedUID):
            cx._abstract_syntax = SharedUID(cx._abstract_syntax)
        if not isinstance(cx._transfer_syntax, SyntaxList):
            cx._transfer_syntax = SyntaxList(SharedUID(ts) for ts in cx._transfer_syntax)
        if type(cx) is PresentationContext:
            cx.__class__ = _CheapCopyContext


# --- Decoding association requests without re-validating the same UIDs -------------

#: Most distinct conformant UIDs remembered (each a few hundred bytes): SOP classes,
#: syntaxes and implementation UIDs repeat; a peer inventing new ones stops the growth.
KNOWN_UIDS_MAX = 20_000
_KNOWN_UIDS: dict = {}


class ConformantUID(SharedUID):
    """A UID decoded before and found conformant, shared by every association that sends it again.

    ``is_valid`` (a regex in pydicom) is known: only conformant values are kept.
    """

    is_valid = True


def _uid_reuse(value, validation_mode=None) -> UID:
    """``UID(value)`` for pynetdicom's presentation module: a :class:`ConformantUID` is returned as it is."""
    if type(value) is ConformantUID:
        return value
    return UID(value, validation_mode)


def uid_decoding_cache() -> None:
    """Decode the UIDs of association requests once per value, not once per association.

    pynetdicom turns every UID of an A-ASSOCIATE-RQ into a pydicom ``UID``
    (regex-validated by pydicom), checks it with ``_config.VALIDATORS["UI"]``
    (its documented hook; regex) and with ``UID.is_valid`` (regex), and builds
    each transfer syntax a second time for the presentation context: getscu's
    121 contexts with their SCP/SCU roles are ~1,200 UIDs and ~3,500 regex
    matches, 8 ms of CPU per association (Orthanc needs well under 1 ms).  The
    same few hundred values come back in every association, so:

    * the validator's verdict is remembered per value and
      ``ENFORCE_UID_CONFORMANCE`` setting;
    * ``set_uid`` (pynetdicom's one UID setter for PDU items, primitives and
      contexts) returns one shared :class:`ConformantUID` for a value it has
      already accepted as conformant with the same arguments; anything else -
      an empty, invalid or non-conformant value, which raises or logs - takes
      pynetdicom's own path every time;
    * the presentation module's ``UID(...)`` returns such a UID as it is.

    Idempotent, process-wide (pinned pynetdicom 3.0.x).
    """
    from pynetdicom import _config, pdu_items, pdu_primitives, presentation, utils

    if getattr(presentation.set_uid, "_pacs_cached", False):
        return
    pynetdicom_validate = _config.VALIDATORS["UI"]

    @functools.lru_cache(maxsize=4096)
    def verdict(value: str, enforce: bool) -> tuple[bool, str]:
        return pynetdicom_validate(value)

    def validate_ui(value) -> tuple[bool, str]:
        if not isinstance(value, str):
            return pynetdicom_validate(value)
        return verdict(str(value), _config.ENFORCE_UID_CONFORMANCE)

    _config.VALIDATORS["UI"] = validate_ui
    original = utils.set_uid

    def set_uid(value, name, allow_empty=True, allow_none=True, validate=True):  # pynetdicom's signature
        keyable = type(value) in (str, bytes, UID, ConformantUID) and bool(value)
        if keyable:
            key = (value, allow_empty, validate, _config.ENFORCE_UID_CONFORMANCE, _config.VALIDATORS["UI"])
            known = _KNOWN_UIDS.get(key)
            if known is not None:
                return known
        uid = original(value, name, allow_empty=allow_empty, allow_none=allow_none, validate=validate)
        if keyable and uid and UID.is_valid.fget(uid) and len(_KNOWN_UIDS) < KNOWN_UIDS_MAX:
            uid = _KNOWN_UIDS.setdefault(key, ConformantUID(uid))
        return uid

    set_uid._pacs_cached = True
    for module in (pdu_items, pdu_primitives, presentation):
        module.set_uid = set_uid
    presentation.UID = _uid_reuse

"""Build, start and stop the DIMSE listeners (used by ``runscp`` and by tests).

Each listener (storage, worklist, qr, print) is its own pynetdicom AE with its
own called AE title and port, configured from the ``dimse.Listener`` row.  The
service modules in :mod:`dimse.handlers` add their presentation contexts and
handlers through ``configure(ae, listener)``; this module adds C-ECHO, the
calling-AE allow list, TCP_NODELAY and the association audit to all of them.
"""

from __future__ import annotations

import errno
import importlib
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from pynetdicom import AE, evt
from pynetdicom.acse import ACSE
from pynetdicom.sop_class import Verification
from pynetdicom.transport import RequestHandler, ThreadedAssociationServer

from dimse import services
from dimse.audit import AuditRecord, audit_close, audit_flush, audit_open
from dimse.db import db_release
from dimse.handlers.echo import handle_echo
from dimse.models import AllowedCaller, AssociationStatus, Listener, ListenerService
from dimse.transport import association_low_latency, contexts_share_uids, uid_decoding_cache
from dimse.workers import leave_to_less_busy

logger = logging.getLogger(__name__)

SERVICE_MODULES = {
    ListenerService.STORAGE: "dimse.handlers.storage",
    ListenerService.WORKLIST: "dimse.handlers.worklist",
    ListenerService.QR: "dimse.handlers.query_retrieve",
    ListenerService.PRINT: "dimse.handlers.printing",
}


class ListenerError(Exception):
    """A listener could not start (busy port, bad configuration)."""


@dataclass
class AssociationState:
    """Per-association bookkeeping, stored on the pynetdicom Association as ``_pacs``."""

    service: str
    process: str
    audit: AuditRecord | None = None
    charset_override: str = ""
    instances_received: int = 0
    bytes_received: int = 0
    requests: int = 0
    failures: int = 0
    closed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Set once the EVT_ESTABLISHED handlers ran (audit row, charset override): a fast
    #: path serving requests in the DUL thread waits for it, as pynetdicom's reactor does.
    established: threading.Event = field(default_factory=threading.Event)


def association_state(assoc) -> AssociationState:
    return assoc._pacs  # set in PacsRequestHandler._create_association


class PacsACSE(ACSE):
    """ACSE that applies the calling-AE allow list, with optional host binding."""

    allowed: list[tuple[str, str]] | None = None  # None = unrestricted

    def _negotiate_as_acceptor(self) -> None:
        if self.allowed is not None:
            calling = (self.requestor.primitive.calling_ae_title or "").strip()
            peer = self.assoc.requestor.address
            if not _caller_allowed(calling, peer, self.allowed):
                self.requestor.ae_title = calling
                logger.warning("association rejected reason=calling-aet-not-allowed calling_aet=%s peer=%s", calling, peer)
                self.assoc._pacs_reject_reason = "calling AE title not allowed"
                # Rejected-permanent, service-user, calling-AE-title-not-recognized (PS3.8 9.3.4).
                self.send_reject(0x01, 0x01, 0x03)
                evt.trigger(self.assoc, evt.EVT_REJECTED, {})
                self.assoc.kill()
                return
        super()._negotiate_as_acceptor()


def _host_matches(host: str, peer: str) -> bool:
    if not host or host == peer:
        return True
    try:
        return peer in {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False


def _caller_allowed(calling: str, peer: str, allowed: list[tuple[str, str]]) -> bool:
    return any(aet == calling and _host_matches(host, peer) for aet, host in allowed)


class PacsRequestHandler(RequestHandler):
    def handle(self) -> None:
        try:
            super().handle()
        except BaseException:
            # The association's thread never ran: give back the connection counted on accept.
            if self.server.load_board is not None:
                self.server.load_board.release()
            raise

    def _create_association(self):
        assoc = super()._create_association()
        association_low_latency(assoc, acceptor=True)
        board = self.server.load_board
        if board is not None:  # counted on accept; uncounted when the association's thread ends
            run = assoc.run

            def run_counted() -> None:
                try:
                    run()
                finally:
                    board.release()

            assoc.run = run_counted
        acse = PacsACSE(assoc)
        acse.allowed = self.server.allowed_callers
        assoc.acse = acse
        assoc._pacs = AssociationState(service=self.server.service, process=self.server.process_key)
        assoc._pacs_reject_reason = ""
        if self.server.association_setup is not None:
            self.server.association_setup(assoc)
        return assoc


class PacsAssociationServer(ThreadedAssociationServer):
    """Threaded server with TCP_NODELAY on every accepted socket and optional SO_REUSEPORT.

    Under ``runscp --workers`` the processes accept from one listening socket (the
    parent's, ``listen_socket`` in the workers) and balance by ``load_board``: see
    :mod:`dimse.workers`.
    """

    daemon_threads = True
    #: listen() backlog: socketserver's 5 refuses connections when a burst of them arrives.
    request_queue_size = 128
    service: str = ""
    process_key: str = ""
    allowed_callers: list[tuple[str, str]] | None = None
    reuse_port: bool = False
    #: The service module's per-association set-up (``association_setup(assoc)``), if it has one.
    association_setup = None
    #: A worker's copy of the parent's listening socket (None: bind our own).
    listen_socket: socket.socket | None = None
    #: The shared board of open associations per process (None: a single process).
    load_board = None

    def server_bind(self) -> None:
        if self.listen_socket is not None:
            self.socket.close()
            self.socket = self.listen_socket
            self.server_address = self.socket.getsockname()
            return
        if self.reuse_port and hasattr(socket, "SO_REUSEPORT"):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()

    def server_activate(self) -> None:
        if self.listen_socket is None:
            super().server_activate()
        if self.load_board is not None:
            # Shared by several processes: whoever loses the race for a connection gets
            # EAGAIN (skipped by serve_forever) instead of blocking in accept().
            self.socket.setblocking(False)

    def get_request(self):
        board = self.load_board
        if board is not None and board.less_busy_elsewhere() and not leave_to_less_busy(board, self.socket):
            raise BlockingIOError("taken by a less busy runscp process")
        try:
            client, address = super().get_request()
        except BlockingIOError:
            raise
        except OSError:
            if self.listen_socket is not None:
                time.sleep(0.05)  # the parent closed the socket; its stop message is on the way
            raise
        if board is not None:
            board.acquire()
        # Without it every DIMSE response waits for the peer's delayed ACK (~40 ms).
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return client, address

    def server_close(self) -> None:
        if self.listen_socket is not None:
            self.socket.close()  # a worker's copy: shutting it down would stop every process
            return
        super().server_close()


# --- Association audit (one place for every listener) -----------------------------


def _peer(assoc) -> tuple[str, int | None]:
    info = assoc.requestor.address_info
    return info.address, info.port


def handle_established(event) -> None:
    state = association_state(event.assoc)
    try:
        _established(event, state)
    finally:
        state.established.set()


def _established(event, state: AssociationState) -> None:
    address, port = _peer(event.assoc)
    state.audit = audit_open(
        service=state.service,
        calling_aet=event.assoc.requestor.ae_title,
        called_aet=event.assoc.acceptor.ae_title,
        peer_address=address,
        peer_port=port,
        process=state.process,
    )
    if state.service == ListenerService.STORAGE:
        state.charset_override = _charset_override(event.assoc.requestor.ae_title)
    logger.info(
        "association established service=%s calling_aet=%s called_aet=%s peer=%s:%s",
        state.service, event.assoc.requestor.ae_title, event.assoc.acceptor.ae_title, address, port,
    )


def _charset_override(calling_aet: str) -> str:
    """The charset override configured for the calling AE's node ('' when none)."""
    try:
        from dimse.selectors import node_charset_override

        return node_charset_override(calling_aet)
    except Exception:
        logger.exception("charset override lookup failed calling_aet=%s", calling_aet)
        db_release()
        return ""


def handle_rejected(event) -> None:
    state = association_state(event.assoc)
    address, port = _peer(event.assoc)
    state.closed = True
    primitive = event.assoc.requestor.primitive
    calling = (getattr(primitive, "calling_ae_title", "") or "").strip()
    called = (getattr(primitive, "called_ae_title", "") or "").strip()
    reason = event.assoc._pacs_reject_reason or _reject_reason(event.assoc, called)
    audit_open(
        service=state.service,
        calling_aet=calling,
        called_aet=called,
        peer_address=address,
        peer_port=port,
        status=AssociationStatus.REJECTED,
        reason=reason,
        process=state.process,
    )
    logger.warning(
        "association rejected service=%s calling_aet=%s called_aet=%s peer=%s reason=%s",
        state.service, calling, called, address, reason,
    )


def _reject_reason(assoc, called: str) -> str:
    if assoc.ae.require_called_aet and called != assoc.acceptor.ae_title.strip():
        return "called AE title not recognised"
    return "too many associations"


def _close(event, status: str) -> None:
    state = association_state(event.assoc)
    with state.lock:
        if state.closed:
            return
        state.closed = True
    if state.audit is not None:
        audit_close(
            state.audit,
            status=status,
            instances_received=state.instances_received,
            bytes_received=state.bytes_received,
            requests=state.requests,
            failures=state.failures,
        )
    db_release()
    logger.info(
        "association %s service=%s calling_aet=%s instances=%d failures=%d",
        status, state.service, event.assoc.requestor.ae_title, state.instances_received, state.failures,
    )


def handle_released(event) -> None:
    _close(event, AssociationStatus.RELEASED)


def handle_aborted(event) -> None:
    _close(event, AssociationStatus.ABORTED)


def handle_conn_close(event) -> None:
    state = association_state(event.assoc)
    if state.audit is None and not state.closed:
        # Connection that never became an association: garbage or a port scan.
        logger.warning("connection closed without association service=%s peer=%s", state.service, _peer(event.assoc)[0])
        state.closed = True
        db_release()
        return
    # Sta13 = the A-RELEASE-RP went out and the peer hung up, as it should (PS3.8
    # 9.2, AR-5): a release whose EVT_RELEASED has not run yet on the reactor thread.
    released = event.assoc.dul.state_machine.current_state == "Sta13" and not event.assoc.is_aborted
    _close(event, AssociationStatus.RELEASED if released else AssociationStatus.ABORTED)


AUDIT_HANDLERS = [
    (evt.EVT_ESTABLISHED, handle_established),
    (evt.EVT_REJECTED, handle_rejected),
    (evt.EVT_RELEASED, handle_released),
    (evt.EVT_ABORTED, handle_aborted),
    (evt.EVT_CONN_CLOSE, handle_conn_close),
]


# --- Listener manager --------------------------------------------------------------


def _allowed_callers(listener: Listener) -> list[tuple[str, str]] | None:
    if not listener.restrict_callers:
        return None
    rows = AllowedCaller.objects.filter(listener__isnull=True) | AllowedCaller.objects.filter(listener=listener)
    return [(row.ae_title.strip(), row.host.strip()) for row in rows]


@dataclass
class RunningListener:
    service: str
    ae_title: str
    port: int
    server: PacsAssociationServer
    thread: threading.Thread


class ListenerManager:
    """Starts and stops the listeners of one process; restart re-reads configuration.

    Parameters
    ----------
    bind_address
        Address to listen on (default ``PACS_BIND_ADDRESS``).
    port_overrides
        ``{service: port}`` replacing the configured port for this process
        (``0`` = an ephemeral port, as tests and ``runscp --port 0`` use).
    services
        Which listeners this process runs (default all).
    reuse_port
        Set SO_REUSEPORT so several runscp processes share each port.
    load_board
        The :class:`dimse.workers.LoadBoard` of a ``runscp --workers`` group.
    on_listen, on_stop
        Called with ``(service, listening_socket)`` after a listener started and
        with ``(service)`` before one stops: the parent of a worker group
        forwards them to its workers.
    """

    def __init__(
        self,
        *,
        bind_address: str | None = None,
        port_overrides: dict[str, int] | None = None,
        services: list[str] | None = None,
        reuse_port: bool = False,
        load_board=None,
        on_listen=None,
        on_stop=None,
    ) -> None:
        self.bind_address = bind_address or settings.PACS_BIND_ADDRESS
        self.port_overrides = dict(port_overrides or {})
        self.services = list(services or SERVICE_MODULES)
        self.reuse_port = reuse_port
        self.load_board = load_board
        self.on_listen = on_listen
        self.on_stop = on_stop
        self.process_key = f"{socket.gethostname()}:{os.getpid()}"
        self.running: dict[str, RunningListener] = {}
        self.errors: dict[str, str] = {}
        self.stopped: set[str] = set()  # stopped on request: stay down until started
        self._lock = threading.RLock()

    # Public API -------------------------------------------------------------
    def start(self, service: str | None = None) -> dict[str, dict]:
        """Start one listener (or every enabled one); return :meth:`status`."""
        with self._lock:
            configs = {row.service: row for row in services.listener_config_list()}
            for name in self._targets(service):
                self.stopped.discard(name)
                if name in self.running:
                    continue
                config = configs[name]
                if service is None and not config.enabled:
                    continue
                self._start_recorded(config)
            db_release()
            return self.status()

    def stop(self, service: str | None = None) -> dict[str, dict]:
        """Stop one listener (or all); active associations are aborted."""
        with self._lock:
            for name in self._targets(service):
                self.stopped.add(name)
                running = self.running.pop(name, None)
                if running:
                    if self.on_stop is not None:
                        self.on_stop(name)
                    self._stop_one(running)
            return self.status()

    def follow(self, service: str, listening: socket.socket) -> dict[str, dict]:
        """Serve *service* on a socket another process listens on (a worker of ``runscp --workers``).

        The listener's configuration is read from the database again, so a
        restart in the parent reaches the workers.
        """
        with self._lock:
            if service not in self.services:
                listening.close()
                return self.status()
            running = self.running.pop(service, None)
            if running:
                self._stop_one(running)
            self.stopped.discard(service)
            config = next(row for row in services.listener_config_list() if row.service == service)
            if not self._start_recorded(config, listening=listening):
                listening.close()
            db_release()
            return self.status()

    def restart(self, service: str | None = None) -> dict[str, dict]:
        """Stop and start again, re-reading the configuration from the database."""
        with self._lock:
            self.stop(service)
            return self.start(service)

    def shutdown(self) -> None:
        self.stop()
        if not audit_flush(timeout=10):
            logger.warning("association audit rows still queued at shutdown")

    def status(self) -> dict[str, dict]:
        result = {}
        for name in self.services:
            running = self.running.get(name)
            result[name] = {
                "running": running is not None,
                "ae_title": running.ae_title if running else "",
                "port": running.port if running else None,
                "active_associations": len(running.server.active_associations) if running else 0,
                "error": self.errors.get(name, ""),
            }
        return result

    def port(self, service: str) -> int:
        return self.running[service].port

    # Internals ----------------------------------------------------------------
    def _targets(self, service: str | None) -> list[str]:
        if service is None:
            return list(self.services)
        if service not in self.services:
            return []
        return [service]

    def _build_ae(self, config: Listener) -> tuple[AE, list, object]:
        ae = AE(ae_title=config.ae_title)
        ae.maximum_associations = config.max_associations
        ae.acse_timeout = config.acse_timeout
        ae.dimse_timeout = config.dimse_timeout
        ae.network_timeout = config.network_timeout
        ae.maximum_pdu_size = settings.PACS_MAX_PDU
        ae.require_called_aet = config.require_called_aet
        ae.add_supported_context(Verification)
        module = importlib.import_module(SERVICE_MODULES[config.service])
        handlers = [(evt.EVT_C_ECHO, handle_echo)] + list(module.configure(ae, config)) + AUDIT_HANDLERS
        contexts_share_uids(ae)
        uid_decoding_cache()
        return ae, handlers, getattr(module, "association_setup", None)

    def _start_recorded(self, config: Listener, listening: socket.socket | None = None) -> bool:
        """Start one listener; its error (busy port...) is kept for :meth:`status` instead of raised."""
        try:
            self._start_one(config, listening=listening)
        except ListenerError as exc:
            self.errors[config.service] = str(exc)
            logger.error("listener start failed service=%s error=%s", config.service, exc)
            return False
        self.errors.pop(config.service, None)
        return True

    def _start_one(self, config: Listener, listening: socket.socket | None = None) -> None:
        ae, handlers, association_setup = self._build_ae(config)
        port = listening.getsockname()[1] if listening else self.port_overrides.get(config.service, config.port)
        try:
            server = ae.make_server(
                (self.bind_address, port),
                ae_title=config.ae_title,
                evt_handlers=handlers,
                server_class=_server_class(
                    service=config.service,
                    process_key=self.process_key,
                    allowed=_allowed_callers(config),
                    reuse_port=self.reuse_port,
                    association_setup=association_setup,
                    listening=listening,
                    load_board=self.load_board,
                ),
                request_handler=PacsRequestHandler,
            )
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ListenerError(
                    f"port {port} is already in use (another runscp or DICOM server?); "
                    f"change the {config.get_service_display()} port or stop the other program"
                ) from exc
            raise ListenerError(f"cannot listen on {self.bind_address}:{port}: {exc.strerror or exc}") from exc
        timestamp = datetime.now().strftime("%Y%m%d%H%M%S")
        thread = threading.Thread(
            target=server.serve_forever, name=f"AcceptorServer@{timestamp}-{config.service}", daemon=True
        )
        thread.start()
        ae._servers.append(server)
        actual_port = server.server_address[1]
        self.running[config.service] = RunningListener(
            service=config.service, ae_title=config.ae_title, port=actual_port, server=server, thread=thread
        )
        logger.info("listener started service=%s ae_title=%s port=%s", config.service, config.ae_title, actual_port)
        if self.on_listen is not None and listening is None:
            self.on_listen(config.service, server.socket)

    def _stop_one(self, running: RunningListener) -> None:
        for assoc in running.server.active_associations:
            assoc.abort()
        running.server.shutdown()
        running.thread.join(timeout=5)
        logger.info("listener stopped service=%s port=%s", running.service, running.port)


def _server_class(
    *, service: str, process_key: str, allowed, reuse_port: bool, association_setup, listening, load_board
) -> type:
    """A server subclass carrying this listener's settings (pynetdicom builds the instance)."""
    return type(
        "PacsAssociationServer_" + service,
        (PacsAssociationServer,),
        {"service": service, "process_key": process_key, "allowed_callers": allowed, "reuse_port": reuse_port,
         "association_setup": staticmethod(association_setup) if association_setup else None,
         "listen_socket": listening, "load_board": load_board},
    )

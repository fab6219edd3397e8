"""``runscp --workers N``: the processes share the listening sockets and balance associations by load.

The parent binds every listener and hands the listening sockets to its worker
processes over a Unix socket pair (``SCM_RIGHTS``); all of them accept from the
same sockets.  A shared board (one small shared-memory page) holds each
process's number of open associations.  A process woken for a new connection
while another process has fewer open associations leaves it to that one for a
few milliseconds (:data:`DEFER_SECONDS`) and accepts it itself only if nobody
did.  So four parallel associations on two processes land two and two; with a
port per process (``SO_REUSEPORT``) the kernel hashes each connection to a
process whatever their load, and all four landed on one in one round of eight.

Workers follow the parent: they start a listener (re-reading its configuration
from the database) when the parent sends its socket and stop it when the
parent says so, so start/stop/restart from the web reach every process through
the parent.
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import select
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

logger = logging.getLogger("dimse.server")

#: How long a busier process leaves a pending connection to a less busy one.
DEFER_SECONDS = 0.02
_SLOT = struct.Struct("ii")  # pid, open associations
_COUNT = struct.Struct("i")
_MESSAGE_BYTES = 256


class LoadBoard:
    """Open associations per process, in memory shared by the processes of one runscp.

    Each process writes only its own slot; a slot with pid 0 is empty (a worker
    not started yet or gone).
    """

    def __init__(self, fd: int, slots: int, slot: int) -> None:
        self.fd = fd
        self.slots = slots
        self.slot = slot
        self._map = mmap.mmap(fd, slots * _SLOT.size)
        self._lock = threading.Lock()
        self._open = 0
        _SLOT.pack_into(self._map, slot * _SLOT.size, os.getpid(), 0)

    @classmethod
    def create(cls, slots: int) -> LoadBoard:
        """A new board for *slots* processes; this process takes slot 0."""
        if hasattr(os, "memfd_create"):
            fd = os.memfd_create("runscp-load")
        else:  # other Unixes: an unlinked temp file, shared the same way
            handle = tempfile.TemporaryFile()
            fd = os.dup(handle.fileno())
            handle.close()
        os.ftruncate(fd, slots * _SLOT.size)
        return cls(fd, slots, 0)

    def acquire(self) -> None:
        """This process took an association."""
        with self._lock:
            self._open += 1
            _COUNT.pack_into(self._map, self.slot * _SLOT.size + 4, self._open)

    def release(self) -> None:
        """One of this process's associations ended."""
        with self._lock:
            self._open = max(0, self._open - 1)
            _COUNT.pack_into(self._map, self.slot * _SLOT.size + 4, self._open)

    @property
    def open_associations(self) -> int:
        return self._open

    def loads(self) -> dict[int, int]:
        """``{pid: open associations}`` of every process on the board."""
        result = {}
        for slot in range(self.slots):
            pid, count = _SLOT.unpack_from(self._map, slot * _SLOT.size)
            if pid:
                result[pid] = count
        return result

    def less_busy_elsewhere(self) -> bool:
        """Whether another live process has fewer open associations than this one."""
        mine = self._open
        if not mine:
            return False
        for slot in range(self.slots):
            if slot == self.slot:
                continue
            pid, count = _SLOT.unpack_from(self._map, slot * _SLOT.size)
            if pid and count < mine:
                return True
        return False

    def vacate(self, slot: int) -> None:
        """Empty a slot (its process exited): nobody leaves connections to it."""
        _SLOT.pack_into(self._map, slot * _SLOT.size, 0, 0)


def leave_to_less_busy(board: LoadBoard, listening: socket.socket) -> bool:
    """Give a less busy process the chance to accept the pending connection.

    Returns True when the connection is still pending (this process should
    accept it), False when another process took it.
    """
    deadline = time.monotonic() + DEFER_SECONDS
    while time.monotonic() < deadline:
        time.sleep(0.001)
        if not select.select([listening], [], [], 0)[0]:
            return False
        if not board.less_busy_elsewhere():
            return True
    return True


# --- Parent -> worker channel ------------------------------------------------------


class WorkerLink:
    """The parent's end of one worker's channel."""

    def __init__(self, slot: int) -> None:
        self.slot = slot
        self.parent_end, self.child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0
        self.quick_deaths = 0  # consecutive deaths within WorkerGroup.STABLE_SECONDS of a start
        self.respawn_at: float | None = None  # set when its death was noticed

    def send_listen(self, service: str, listening: socket.socket) -> None:
        self._send({"listen": service}, [listening.fileno()])

    def send_stop(self, service: str) -> None:
        self._send({"stop": service}, [])

    def _send(self, message: dict, fds: list[int]) -> None:
        try:
            socket.send_fds(self.parent_end, [json.dumps(message).encode()], fds)
        except OSError as exc:  # the worker is gone; the parent's loop notices and reports it
            logger.warning("runscp worker slot=%s unreachable: %s", self.slot, exc)

    def close(self) -> None:
        self.parent_end.close()
        self.child_end.close()


class WorkerGroup:
    """The parent's side of ``runscp --workers N``: the board and the N-1 worker processes.

    *args* is the worker's command line without the channel and board options.
    ``listen``/``stop`` are the parent ListenerManager's hooks.
    """

    #: A worker that died is started again at once.  If the new one dies too within
    #: STABLE_SECONDS of its start, the next start waits RESPAWN_SECONDS, doubled on
    #: each further quick death up to RESPAWN_MAX_SECONDS: a worker that cannot start
    #: (a broken install, no memory) is not restarted, with a log line, every few seconds forever.
    RESPAWN_SECONDS = 10.0
    RESPAWN_MAX_SECONDS = 300.0
    STABLE_SECONDS = 60.0

    def __init__(self, workers: int, args: list[str]) -> None:
        self.board = LoadBoard.create(workers)
        self.args = args
        self.links = [WorkerLink(slot) for slot in range(1, workers)]
        self.listening: dict[str, socket.socket] = {}
        self._lock = threading.Lock()
        self._stopping = False

    def listen(self, service: str, listening: socket.socket) -> None:
        with self._lock:
            self.listening[service] = listening
            for link in self.links:
                link.send_listen(service, listening)

    def stop(self, service: str) -> None:
        with self._lock:
            self.listening.pop(service, None)
            if self._stopping:
                return
            for link in self.links:
                link.send_stop(service)

    def start(self) -> None:
        with self._lock:
            for link in self.links:
                self._spawn(link)

    def pids(self) -> list[str]:
        return [str(link.process.pid) for link in self.links if link.process is not None]

    def watch(self) -> None:
        """Called from the parent's control loop: start a worker again if it died."""
        with self._lock:
            if self._stopping:
                return
            for index, link in enumerate(self.links):
                code = link.process.poll() if link.process is not None else None
                if code is None:
                    continue
                now = time.monotonic()
                if link.respawn_at is None:
                    if now - link.started_at < self.STABLE_SECONDS:
                        link.quick_deaths += 1
                    else:
                        link.quick_deaths = 0
                    link.respawn_at = now + self.respawn_delay(link.quick_deaths)
                    logger.error("runscp worker pid=%s exited with code %s; starting it again in %.0f s",
                                 link.process.pid, code, link.respawn_at - now)
                    self.board.vacate(link.slot)
                    self._forget(link.process.pid)
                if now < link.respawn_at:
                    continue
                link.close()
                fresh = WorkerLink(link.slot)
                fresh.quick_deaths = link.quick_deaths
                for service, listening in self.listening.items():
                    fresh.send_listen(service, listening)
                self.links[index] = fresh
                self._spawn(fresh)
                logger.warning("runscp worker started again pid=%s", fresh.process.pid)

    def respawn_delay(self, quick_deaths: int) -> float:
        """Seconds before a dead worker is started again, after *quick_deaths* deaths in a row soon after start."""
        if quick_deaths <= 1:
            return 0.0
        return min(self.RESPAWN_SECONDS * 2 ** (quick_deaths - 2), self.RESPAWN_MAX_SECONDS)

    @staticmethod
    def _forget(pid: int) -> None:
        """Drop a dead worker's heartbeat row: the status page must not show it running."""
        from dimse import services

        try:
            services.scp_process_remove(key=f"{socket.gethostname()}:{pid}")
        except Exception:
            logger.exception("could not remove the heartbeat of worker pid=%s", pid)

    def shutdown(self, timeout: float = 15) -> None:
        with self._lock:
            self._stopping = True
            running = [link.process for link in self.links if link.process is not None]
        for process in running:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in running:
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
        for link in self.links:
            link.close()

    def _spawn(self, link: WorkerLink) -> None:
        channel = link.child_end.fileno()
        args = [*self.args, "--worker-channel", str(channel),
                "--worker-board", f"{self.board.fd}:{self.board.slots}:{link.slot}"]
        link.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, pass_fds=(channel, self.board.fd))
        link.started_at = time.monotonic()
        # The worker holds its end now; messages queued before it started wait there for it.
        link.child_end.close()


def follow_parent(channel: socket.socket, manager, stop: threading.Event) -> None:
    """Worker side: apply the parent's listen/stop messages to *manager* until the channel closes."""
    while not stop.is_set():
        try:
            data, fds, _flags, _addr = socket.recv_fds(channel, _MESSAGE_BYTES, 1)
        except OSError:
            break
        if not data:  # the parent closed its end (or exited)
            break
        message = json.loads(data)
        try:
            if "listen" in message and fds:
                manager.follow(message["listen"], socket.socket(fileno=fds[0]))
            elif "stop" in message:
                manager.stop(message["stop"])
        except Exception:
            logger.exception("runscp worker could not apply %s", message)
    stop.set()

"""Association audit rows written off the association threads.

Recording an association used to cost a committed INSERT before the
association was accepted and an UPDATE at its end (~10-20 ms of a short
C-ECHO or C-FIND association under load).  The rows now go through one
background writer per process: handlers enqueue and return, the writer
commits whatever has queued up in one transaction.  Order per association is
kept (one FIFO, one writer), so an association's close always finds its row.

:func:`audit_flush` waits until everything queued so far is committed
(``runscp`` calls it on shutdown; tests may call it before asserting).
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field

from django.db import close_old_connections, connections, transaction

from dimse import services

logger = logging.getLogger(__name__)


@dataclass
class AuditRecord:
    """One association's row: filled in by the writer once it is inserted."""

    fields: dict
    log_id: int | None = None
    closing: dict | None = None


@dataclass
class _Flush:
    done: threading.Event = field(default_factory=threading.Event)


class _AuditWriter:
    def __init__(self) -> None:
        self._queue: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def put(self, item) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="association-audit", daemon=True)
                self._thread.start()
        self._queue.put(item)

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            flushes = [item for item in batch if isinstance(item, _Flush)]
            work = [item for item in batch if not isinstance(item, _Flush)]
            try:
                if work:
                    self._write(work)
            except Exception:
                logger.exception("association audit failed records=%d", len(work))
            finally:
                # Do not hold a connection between batches (tests drop their databases).
                connections.close_all()
            for item in flushes:
                item.done.set()

    @staticmethod
    def _write(work: list[tuple[str, AuditRecord]]) -> None:
        close_old_connections()
        with transaction.atomic():
            for action, record in work:
                if action == "open":
                    record.log_id = services.association_open(**record.fields)
                elif action == "close" and record.log_id is not None and record.closing:
                    services.association_close(log_id=record.log_id, **record.closing)

    def flush(self, timeout: float) -> bool:
        if self._thread is None:
            return True
        marker = _Flush()
        self.put(marker)
        return marker.done.wait(timeout)


_writer = _AuditWriter()


def audit_open(**fields) -> AuditRecord:
    """Queue the row of a new (established or rejected) association; see ``services.association_open``."""
    record = AuditRecord(fields=fields)
    _writer.put(("open", record))
    return record


def audit_close(record: AuditRecord, **closing) -> None:
    """Queue the end of *record*'s association; see ``services.association_close``."""
    record.closing = closing
    _writer.put(("close", record))


def audit_flush(timeout: float = 10.0) -> bool:
    """Wait until every queued audit row is committed; False on timeout."""
    return _writer.flush(timeout)


"""Group commit: the last, durable step of ingest shared by the instances that reach it together.

Every archived instance needs its directory entries fsynced and its index row
committed (a WAL flush) before Success may be answered: two flushes of the disk
cache, ~0.6-2 ms each on the machines measured, on top of the file's own.  When
several associations store at once (and runscp serves each in its own thread),
the instances that arrive while a commit is flushing wait and then go in *one*
directory fsync per folder and *one* transaction: the flushes are shared
instead of queued one after the other.

There is no timer and no committer thread: the first instance to arrive leads
(runs the group in its own thread, on its own database connection); the others
queue.  When its group is done the leader hands the queue to the first waiter,
which leads the next group, so no association serves the others for long.  A
lone association leads every time and pays nothing extra.

Each instance's index work runs in its own savepoint, so one instance's
failure is its own; a failed commit or directory fsync
fails every instance of the group, whose callers then remove their files.

On SQLite with ``PACS_SYNC=full`` the group's transaction commits without
SQLite's own WAL fsync (``synchronous=NORMAL`` for that commit only) and the
WAL is fdatasync'ed right after, before any caller may answer: the same flush
of the same bytes, but done after SQLite released its write lock instead of
while holding it, so another runscp process's transaction no longer queues
behind this one's disk flush (store benchmark, 4 associations on 2 processes:
+8 to +12% in alternated runs).  A transaction committed in WAL mode is in the
WAL file until a checkpoint, and SQLite fsyncs the WAL before checkpointing
and the database after, so once the fdatasync returns the commit survives a
power cut exactly as with ``synchronous=FULL``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Generic, TypeVar

from django.conf import settings
from django.db import OperationalError, connection, transaction

from pacs import storage

T = TypeVar("T")


class _Entry(Generic[T]):
    __slots__ = ("directories", "error", "finished", "lead", "result", "wake", "work")

    def __init__(self, directories: set[Path], work: Callable[[], T]) -> None:
        self.directories, self.work = directories, work
        self.wake = threading.Event()  # set when its group is done, or when it is to lead
        self.lead = self.finished = False
        self.result: T | None = None
        self.error: BaseException | None = None


class GroupCommit:
    """Runs ``work`` for each caller inside a shared transaction after a shared directory fsync."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[_Entry] = []
        self._leading = False

    def run(self, directories: set[Path], work: Callable[[], T]) -> T:
        """fsync *directories*, then run *work* (index writes) and commit; return its result.

        Raises what *work* raised, or the error of the shared fsync/commit.
        """
        entry: _Entry[T] = _Entry(directories, work)
        with self._lock:
            self._queue.append(entry)
            if not self._leading:
                self._leading = entry.lead = True
        if not entry.lead:
            entry.wake.wait()
        if not entry.finished:  # leading a group that holds this entry (and whoever queued meanwhile)
            self._lead()
        if entry.error is not None:
            raise entry.error
        return entry.result  # type: ignore[return-value]

    def _lead(self) -> None:
        with self._lock:
            group, self._queue = self._queue, []
        try:
            _commit(group)
        finally:
            with self._lock:
                for entry in group:
                    entry.finished = True
                    entry.wake.set()
                if self._queue:  # the next group is led by its first caller
                    self._queue[0].lead = True
                    self._queue[0].wake.set()
                else:
                    self._leading = False


class CommitNotDurable(Exception):
    """The index rows were committed but flushing the WAL failed: they may not survive a power cut.

    The rows and their files stay (they match); the caller answers failure.
    """


def _commit(group: list[_Entry]) -> None:
    try:
        storage.directories_sync(set().union(*(entry.directories for entry in group)))
    except OSError as exc:
        for entry in group:
            entry.error = exc
        return
    if not _wal_sync_after_commit():
        _commit_rows(group)
        return
    with _synchronous_normal():
        _commit_rows(group)
    if all(entry.error is not None for entry in group):
        return  # nothing was committed
    try:
        _wal_sync()
    except OSError as exc:
        for entry in group:
            if entry.error is None:
                entry.result = None
                entry.error = CommitNotDurable(f"Cannot flush the index: {exc.strerror or exc}")


def _wal_sync_after_commit() -> bool:
    """Whether this group's commit flushes SQLite's WAL itself, after the commit (see the module docstring)."""
    return connection.vendor == "sqlite" and settings.PACS_SYNC == "full" and not connection.in_atomic_block


@contextmanager
def _synchronous_normal():
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA synchronous=NORMAL")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA synchronous=FULL")


def _wal_sync() -> None:
    # Opened by name each time: the WAL of a database whose connections all closed is
    # deleted and a new one created (not while this thread's connection is open).
    fd = os.open(f"{connection.settings_dict['NAME']}-wal", os.O_RDONLY)
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


def _commit_rows(group: list[_Entry]) -> None:
    if len(group) == 1:  # the work opens its own transaction
        _attempt(group[0])
        return
    try:
        with transaction.atomic():
            for entry in group:
                try:
                    with transaction.atomic():  # a savepoint: a failure undoes this entry's writes only
                        entry.result = entry.work()
                except Exception as exc:  # noqa: BLE001 - handed to the caller, who decides
                    entry.error = exc
    except Exception as exc:  # noqa: BLE001 - the commit itself failed: nothing of the group is stored
        for entry in group:
            if entry.error is None:
                entry.error, entry.result = exc, None
    # A group takes the row locks of several series/studies in arrival order, so two
    # processes' groups can deadlock on PostgreSQL (or find SQLite busy); the database
    # gives up on one of them.  Such an entry is tried once more on its own.
    for entry in group:
        if isinstance(entry.error, OperationalError):
            _attempt(entry)


def _attempt(entry: _Entry) -> None:
    """Run *entry*'s work in its own transaction (the work opens it); keep its result or error."""
    try:
        entry.result, entry.error = entry.work(), None
    except BaseException as exc:  # noqa: BLE001 - handed to the caller, who decides
        entry.result, entry.error = None, exc


group_commit = GroupCommit()

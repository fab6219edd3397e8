"""Ingest's group commit (pacs.services.ingest.commit) with real threads on the real database."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pytest
from django.db import connection, connections

from pacs import storage
from pacs.exceptions import ProcessingFailure
from pacs.models import Instance, Patient
from pacs.services.ingest import instance_ingest
from pacs.services.ingest.commit import GroupCommit
from tests import dicom_factories as f
from tests.polling import eventually

pytestmark = pytest.mark.django_db(transaction=True)


def test_concurrent_callers_share_groups_and_each_gets_its_own_outcome(storage_root):
    group = GroupCommit()
    callers = 12
    start = threading.Barrier(callers)
    ran_in: dict[int, int] = {}
    outcomes: dict[int, object] = {}
    first_running = threading.Event()

    def work(index: int):
        ran_in[index] = threading.get_ident()
        if not first_running.is_set():
            first_running.set()
            # The first group is slow to finish: every other caller queues behind it.
            eventually(lambda: len(group._queue) == callers - 1)
        if index == 5:
            Patient.objects.create(patient_id="P5")
            raise ValueError("instance 5 is refused")
        return Patient.objects.create(patient_id=f"P{index}").pk

    def caller(index: int) -> None:
        start.wait()
        try:
            outcomes[index] = (threading.get_ident(), group.run({storage_root}, lambda: work(index)))
        except ValueError as exc:
            outcomes[index] = (threading.get_ident(), exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert isinstance(outcomes[5][1], ValueError)
    stored = dict(Patient.objects.values_list("pk", "patient_id"))
    for index in set(range(callers)) - {5}:
        assert stored[outcomes[index][1]] == f"P{index}"
    assert "P5" not in stored.values()  # its savepoint was rolled back, the group's commit kept the others
    led_by_others = [i for i in range(callers) if ran_in[i] != outcomes[i][0]]
    assert led_by_others, "no caller's work ran in another caller's group"


def test_a_failed_directory_fsync_fails_the_group_and_runs_no_work(storage_root):
    group = GroupCommit()
    ran = []
    with pytest.raises(OSError):
        group.run({storage_root / "missing-folder"}, lambda: ran.append(1))
    assert ran == []
    assert group.run({Path(storage_root)}, lambda: 42) == 42  # the next caller leads normally


def test_an_entry_the_database_gave_up_on_is_tried_again_alone(storage_root):
    """A deadlock (PostgreSQL) or a busy database inside a group fails that entry's savepoint;
    it is run once more in a transaction of its own."""
    from django.db import OperationalError

    group = GroupCommit()
    attempts = []
    release_first = threading.Event()
    results = {}

    def blocked_leader():
        release_first.wait(5)
        return Patient.objects.create(patient_id="LEADER").pk

    def flaky():
        attempts.append(1)
        if len(attempts) == 1:
            raise OperationalError("deadlock detected")
        return Patient.objects.create(patient_id="FLAKY").pk

    def call(name, work):
        try:
            results[name] = group.run({storage_root}, work)
        finally:
            connections.close_all()

    leader = threading.Thread(target=call, args=("leader", blocked_leader))
    leader.start()
    eventually(lambda: group._leading and not group._queue)  # the leader's group is running
    others = [threading.Thread(target=call, args=(name, work)) for name, work in
              (("flaky", flaky), ("plain", lambda: Patient.objects.create(patient_id="PLAIN").pk))]
    for thread in others:
        thread.start()
    eventually(lambda: len(group._queue) == 2)  # both wait behind the leader: they will form one group
    release_first.set()
    for thread in (leader, *others):
        thread.join(10)
    assert len(attempts) == 2
    stored = dict(Patient.objects.values_list("patient_id", "pk"))
    assert results == {"leader": stored["LEADER"], "flaky": stored["FLAKY"], "plain": stored["PLAIN"]}


def _fdatasync_spy(monkeypatch, *, fail_wal: bool = False) -> list[str]:
    """Record the files ``os.fdatasync`` flushes (SQLite's own flushes are not Python calls)."""
    real = os.fdatasync
    flushed: list[str] = []

    def spy(fd: int) -> None:
        path = os.readlink(f"/proc/self/fd/{fd}")
        flushed.append(path)
        if fail_wal and path.endswith("-wal"):
            raise OSError(errno.EIO, "Input/output error")
        real(fd)

    monkeypatch.setattr(os, "fdatasync", spy)
    return flushed


def _sqlite() -> bool:
    """SQLite's WAL is flushed by ingest after the commit; PostgreSQL flushes its own WAL inside COMMIT."""
    return connection.vendor == "sqlite"


def test_group_flushes_the_sqlite_wal_after_the_commit_and_keeps_full_sync(storage_root, settings, monkeypatch):
    settings.PACS_SYNC = "full"
    flushed = _fdatasync_spy(monkeypatch)
    pk = GroupCommit().run({storage_root}, lambda: Patient.objects.create(patient_id="W1").pk)
    assert Patient.objects.get(pk=pk).patient_id == "W1"
    if not _sqlite():
        assert flushed == []  # PostgreSQL's COMMIT returned after its own WAL flush
        return
    wal = os.path.realpath(f"{connection.settings_dict['NAME']}-wal")
    assert flushed == [wal]
    with connection.cursor() as cursor:  # every other commit of this connection is flushed by SQLite again
        cursor.execute("PRAGMA synchronous")
        assert cursor.fetchone()[0] == 2  # FULL


def test_group_with_file_sync_leaves_the_wal_to_the_database(storage_root, settings, monkeypatch):
    settings.PACS_SYNC = "file"
    flushed = _fdatasync_spy(monkeypatch)
    pk = GroupCommit().run({storage_root}, lambda: Patient.objects.create(patient_id="W2").pk)
    assert Patient.objects.get(pk=pk).patient_id == "W2"
    assert flushed == []


def test_a_failed_wal_flush_answers_failure_and_keeps_matching_row_and_file(
    archive_config, storage_root, settings, monkeypatch
):
    settings.PACS_SYNC = "full"
    _fdatasync_spy(monkeypatch, fail_wal=True)
    if _sqlite():
        with pytest.raises(ProcessingFailure) as failure:
            instance_ingest(source=f.encode(f.ct_dataset()))
        assert failure.value.dicom_status == 0x0110 and "Cannot flush the index" in failure.value.message
    else:  # no WAL file of ours to flush: the instance is stored
        assert instance_ingest(source=f.encode(f.ct_dataset())).status == "stored"
    instance = Instance.objects.get()  # committed: its file stays with it
    assert storage.absolute_path(instance.file_path).is_file()
    monkeypatch.undo()
    assert instance_ingest(source=f.encode(f.ct_dataset())).status == "stored"  # the next one is stored normally

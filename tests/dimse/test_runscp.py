"""The real ``runscp`` process: ephemeral ports, control channel, SIGTERM, kill -9 durability."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage

from dimse.models import ListenerCommand, ScpProcess
from dimse.services import listener_command_issue, listener_command_wait
from pacs import storage
from pacs.models import Instance
from tests import dicom_factories as f
from tests.polling import eventually

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]


def _database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Runscp:
    def __init__(self, storage_root: Path, *args: str) -> None:
        env = {
            **os.environ,
            "DATABASE_URL": _database_url(),
            "PACS_STORAGE_ROOT": str(storage_root),
            "PACS_MIN_FREE_MB": "1",
            "PYTHONUNBUFFERED": "1",
        }
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "runscp", "--bind", "127.0.0.1", "--port", "0", *args],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.ports: dict[str, int] = {}
        self.output: list[str] = []
        for line in self.proc.stdout:
            self.output.append(line)
            match = re.match(r"(\w+) listener \S+ on port (\d+)", line)
            if match:
                self.ports[match.group(1)] = int(match.group(2))
            if "runscp ready" in line or "Error" in line:
                break
        assert self.ports, "".join(self.output)
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        for line in self.proc.stdout:
            self.output.append(line)

    def stop(self, sig=signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)


@pytest.fixture
def runscp(storage_root):
    started = []

    def _start(*args):
        process = Runscp(storage_root, *args)
        started.append(process)
        return process

    yield _start
    for process in started:
        process.stop(signal.SIGKILL)


def _associate(port, called="STORESCP"):
    ae = AE(ae_title="PYSCU")
    ae.add_requested_context(CTImageStorage, f.EXPLICIT_LE)
    return ae.associate("127.0.0.1", port, ae_title=called)


def test_runscp_ephemeral_ports_store_and_clean_sigterm(runscp):
    scp = runscp("--services", "storage")
    assoc = _associate(scp.ports["storage"])
    assert assoc.send_c_store(f.ct_dataset()).Status == 0
    assoc.release()
    assert Instance.objects.count() == 1
    eventually(lambda: ScpProcess.objects.exists())
    assert scp.stop(signal.SIGTERM) == 0
    assert "runscp stopped." in "".join(scp.output)
    assert not ScpProcess.objects.exists()


def test_control_channel_stops_starts_and_restarts(runscp):
    scp = runscp("--services", "storage")
    port = scp.ports["storage"]
    command = listener_command_wait(listener_command_issue(action="stop", service="storage"))
    assert command.processed_at and command.result["storage"]["running"] is False
    assert _associate(port).is_established is False
    command = listener_command_wait(listener_command_issue(action="start", service="storage"))
    assert command.result["storage"]["running"] is True
    new_port = command.result["storage"]["port"]
    assoc = _associate(new_port)
    assert assoc.is_established
    assoc.release()
    # restart re-reads the configuration
    from dimse.services import listener_config_update

    listener_config_update(service="storage", ae_title="RENAMED")
    command = listener_command_wait(listener_command_issue(action="restart"))
    assert command.result["storage"]["ae_title"] == "RENAMED"
    assoc = _associate(command.result["storage"]["port"], called="RENAMED")
    assert assoc.is_established
    assoc.release()
    heartbeat = eventually(lambda: ScpProcess.objects.filter(listeners__storage__ae_title="RENAMED").first(),
                           timeout=15)
    assert heartbeat.listeners["storage"]["running"] is True


def test_every_acknowledged_instance_survives_kill_9(runscp, storage_root):
    scp = runscp("--services", "storage")
    acknowledged: list[str] = []
    assoc = _associate(scp.ports["storage"])
    stop_sending = threading.Event()

    def send():
        for i in range(400):
            if stop_sending.is_set():
                return
            ds = f.ct_dataset(size=64, instance_number=i)
            try:
                status = assoc.send_c_store(ds)
            except Exception:
                return
            if status and status.get("Status") == 0:
                acknowledged.append(ds.SOPInstanceUID)
            elif not status:
                return

    sender = threading.Thread(target=send)
    sender.start()
    eventually(lambda: len(acknowledged) >= 20, timeout=60)
    scp.proc.send_signal(signal.SIGKILL)
    scp.proc.wait(timeout=30)
    stop_sending.set()
    sender.join(timeout=60)
    assoc.abort()
    assert len(acknowledged) >= 20
    stored = dict(Instance.objects.values_list("sop_instance_uid", "file_path"))
    missing = [uid for uid in acknowledged if uid not in stored]
    assert not missing, f"{len(missing)} acknowledged instances lost"
    for uid in acknowledged:
        assert storage.absolute_path(stored[uid]).stat().st_size > 0
    # a restarted runscp serves again
    again = runscp("--services", "storage")
    assoc = _associate(again.ports["storage"])
    assert assoc.send_c_store(f.ct_dataset()).Status == 0
    assoc.release()


def test_busy_port_message_and_exit_code(runscp):
    scp = runscp("--services", "storage")
    port = scp.ports["storage"]
    result = subprocess.run(
        [sys.executable, "manage.py", "runscp", "--bind", "127.0.0.1", "--services", "storage",
         "--storage-port", str(port)],
        cwd=ROOT, env={**os.environ, "DATABASE_URL": _database_url()}, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert f"port {port} is already in use" in result.stderr


def test_unapplied_migrations_are_reported(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "runscp", "--port", "0"],
        cwd=ROOT, env={**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/empty.sqlite3",
                       "PACS_DATA_DIR": str(tmp_path)},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0 and "unapplied migrations" in result.stderr
    assert settings.PACS_STORAGE_ROOT  # the test process itself is untouched


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in state  # a zombie has exited


def _serving(count: int, **lookup) -> list[int]:
    """Wait until *count* runscp processes report the storage listener running; their pids."""
    rows = ScpProcess.objects.filter(listeners__storage__running=True, **lookup)
    return eventually(lambda: rows.count() == count and list(rows.values_list("pid", flat=True)), timeout=30)


def _processes_of_open_associations(count: int) -> Counter:
    """Which process holds each of the *count* established (still open) associations."""
    from dimse.models import AssociationLog

    rows = AssociationLog.objects.filter(status="established")
    eventually(lambda: rows.count() == count, timeout=15)
    return Counter(int(process.rsplit(":", 1)[1]) for process in rows.values_list("process", flat=True))


def _hold_open(port: int, count: int, called: str = "STORESCP") -> list:
    assocs = [_associate(port, called) for _ in range(count)]
    assert all(assoc.is_established for assoc in assocs)
    return assocs


def _release(assocs: list) -> None:
    for assoc in assocs:
        assert assoc.send_c_store(f.ct_dataset()).Status == 0
        assoc.release()


def test_workers_share_the_port_balance_by_load_and_stop_with_the_parent(runscp):
    from dimse.models import AssociationLog

    scp = runscp("--services", "storage", "--workers", "3")
    port = scp.ports["storage"]
    pids = _serving(3)
    children = [pid for pid in pids if pid != scp.proc.pid]
    assert len(children) == 2
    # One listening socket, accepted from by all three processes (not one socket each).
    listening = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True).stdout
    assert len(listening.splitlines()) == 1 and sorted(map(int, re.findall(r"pid=(\d+)", listening))) == sorted(pids)
    # Six associations open at once land two on each process, whatever the order of arrival.
    assocs = _hold_open(port, 6)
    assert _processes_of_open_associations(6) == Counter({pid: 2 for pid in pids})
    _release(assocs)
    eventually(lambda: AssociationLog.objects.filter(status="released").count() == 6, timeout=15)
    # As they end, the next ones go where the room is: a burst of sequential ones is served too.
    for number in range(6):
        assoc = _associate(port)
        assert assoc.send_c_store(f.ct_dataset(instance_number=number)).Status == 0
        assoc.release()
    assert Instance.objects.count() == 12
    assert scp.stop(signal.SIGTERM) == 0
    for pid in children:
        eventually(lambda pid=pid: not _running(pid), timeout=20)
    assert not ScpProcess.objects.exists()


def test_workers_follow_the_parent_on_stop_start_and_restart(runscp):
    from dimse.services import listener_config_update

    scp = runscp("--services", "storage", "--workers", "2")
    pids = _serving(2)
    command = listener_command_wait(listener_command_issue(action="stop", service="storage"))
    assert command.result["storage"]["running"] is False
    # Nobody accepts on the old port any more: the workers let go of the socket too.
    assert _associate(scp.ports["storage"]).is_established is False
    eventually(lambda: not ScpProcess.objects.filter(listeners__storage__running=True).exists(), timeout=15)
    listener_config_update(service="storage", ae_title="RENAMED")
    command = listener_command_wait(listener_command_issue(action="start", service="storage"))
    port = command.result["storage"]["port"]
    _serving(2, listeners__storage__ae_title="RENAMED")
    assocs = _hold_open(port, 2, called="RENAMED")  # both processes took the new configuration
    assert _processes_of_open_associations(2) == Counter({pid: 1 for pid in pids})
    _release(assocs)
    assert Instance.objects.count() == 2
    assert not ListenerCommand.objects.filter(processed_at__isnull=True).exists()


def test_a_worker_that_dies_is_started_again(runscp):
    scp = runscp("--services", "storage", "--workers", "2")
    port = scp.ports["storage"]
    child = next(pid for pid in _serving(2) if pid != scp.proc.pid)
    os.kill(child, signal.SIGKILL)
    eventually(lambda: "exited with code -9" in "".join(scp.output), timeout=15)
    pids = _serving(2)
    assert child not in pids and scp.proc.pid in pids
    assocs = _hold_open(port, 2)
    assert _processes_of_open_associations(2) == Counter({pid: 1 for pid in pids})
    _release(assocs)


def test_workers_exit_when_the_parent_is_killed(runscp):
    scp = runscp("--services", "storage", "--workers", "2")
    child = next(pid for pid in _serving(2) if pid != scp.proc.pid)
    scp.stop(signal.SIGKILL)
    eventually(lambda: not _running(child), timeout=20)


def _starts_of_a_worker(group, count: int, timeout: float) -> list[float]:
    """Drive *group*'s watch loop (as runscp's control loop does) until its worker was started *count* times."""
    starts: list[float] = []

    def started_enough() -> bool:
        group.watch()
        link = group.links[0]
        if not starts or link.started_at != starts[-1]:
            starts.append(link.started_at)
        return len(starts) >= count

    eventually(started_enough, timeout=timeout, interval=0.01)
    return starts


@pytest.mark.django_db
def test_a_worker_that_keeps_dying_at_start_is_restarted_less_and_less_often(caplog):
    from dimse import workers

    # A worker that exits at once, e.g. a broken install: the real process, quicker delays.
    group = workers.WorkerGroup(2, [sys.executable, "-S", "-c", "import sys; sys.exit(3)"])
    assert [group.respawn_delay(n) for n in range(9)] == [0, 0, 10, 20, 40, 80, 160, 300, 300]  # the defaults
    group.RESPAWN_SECONDS, group.RESPAWN_MAX_SECONDS = 0.5, 1.0
    workers.logger.addHandler(caplog.handler)  # the service loggers do not propagate to the root
    group.start()
    try:
        starts = _starts_of_a_worker(group, 6, timeout=20)
    finally:
        group.shutdown()
        workers.logger.removeHandler(caplog.handler)
    gaps = [later - earlier for earlier, later in zip(starts, starts[1:])]
    assert gaps[0] < 0.5  # the first death: started again at once
    for gap, delay in zip(gaps[1:], [0.5, 1.0, 1.0, 1.0]):  # then doubling, capped
        assert delay <= gap < delay + 0.5
    assert "exited with code 3; starting it again in 0 s" in caplog.text


@pytest.mark.django_db
def test_a_worker_that_ran_a_while_before_dying_is_restarted_at_once():
    from dimse.workers import WorkerGroup

    # A worker that serves until it is killed (as by the OOM killer), each time after a stable run.
    group = WorkerGroup(2, [sys.executable, "-S", "-c", "import signal; signal.pause()"])
    group.RESPAWN_SECONDS, group.STABLE_SECONDS = 5.0, 0.2
    group.start()
    try:
        for _ in range(3):
            link = group.links[0]
            eventually(lambda link=link: time.monotonic() - link.started_at > group.STABLE_SECONDS, interval=0.01)
            link.process.kill()
            killed_at = time.monotonic()
            eventually(lambda link=link: (group.watch(), group.links[0] is not link)[1], interval=0.01)
            assert group.links[0].started_at - killed_at < 1.0  # not RESPAWN_SECONDS later
            assert group.links[0].quick_deaths == 0
    finally:
        group.shutdown()

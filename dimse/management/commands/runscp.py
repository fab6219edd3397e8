"""``python manage.py runscp``: run the DICOM listeners, like ``runserver`` runs the web.

Starts every enabled listener (storage, worklist, query/retrieve, print), then
serves the control channel: start/stop/restart requests written to
``ListenerCommand`` by the web/API are applied within a second, and a heartbeat
with each listener's state is written to ``ScpProcess``.  SIGINT/SIGTERM stop
cleanly.  ``--port 0`` binds ephemeral ports and prints them.

``--workers N`` runs N processes accepting from every listener socket, so
parallel associations use every core instead of one Python interpreter; a new
association goes to the process with the fewest open ones (:mod:`dimse.workers`).
This process binds the sockets, hands them to the others, restarts a worker
that dies and stops them all when it stops.  The workers follow it: a
start/stop/restart from the web, applied here, reaches them through it.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import socket
import sys
import threading
import time

from django.conf import settings
from django.core.checks import Tags
from django.core.management.base import BaseCommand, CommandError
from django.db import connections
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from dimse import services
from dimse.models import ListenerCommand
from dimse.server import SERVICE_MODULES, ListenerManager
from dimse.workers import LoadBoard, WorkerGroup, follow_parent
from pacs.services.logs import log_rotate
from pacs.services.users import default_password_in_use
from pacs.storage import temp_cleanup

logger = logging.getLogger("dimse.server")

HEARTBEAT_SECONDS = 5
POLL_SECONDS = 0.5
ROTATE_SECONDS = 60


class Command(BaseCommand):
    help = "Run the DICOM listeners (storage, worklist, query/retrieve, print)."
    # The checks that concern the listeners; the URL/template/admin checks would
    # import every web view and the REST stack (+70 MB per process, measured).
    requires_system_checks = [Tags.models, Tags.compatibility, Tags.signals, Tags.caches]

    def add_arguments(self, parser) -> None:
        parser.add_argument("--bind", default=None, help="Address to listen on (default PACS_BIND_ADDRESS).")
        parser.add_argument("--port", type=int, default=None, help="Use this port for every listener (0 = ephemeral).")
        for service in SERVICE_MODULES:
            parser.add_argument(f"--{service}-port", type=int, default=None, help=f"Port of the {service} listener.")
        parser.add_argument(
            "--services", default="", help="Comma-separated listeners to run (default: storage,worklist,qr,print)."
        )
        parser.add_argument(
            "--reuse-port", action="store_true", help="SO_REUSEPORT: several runscp processes share each port."
        )
        parser.add_argument(
            "--workers", type=int, default=1,
            help="Processes sharing the listener ports (default 1; 2-4 use more cores for parallel associations).",
        )
        parser.add_argument("--worker-of", type=int, default=0, help=argparse.SUPPRESS)
        # A worker's channel from its parent and the load board (fd:slots:slot), see dimse.workers.
        parser.add_argument("--worker-channel", type=int, default=-1, help=argparse.SUPPRESS)
        parser.add_argument("--worker-board", default="", help=argparse.SUPPRESS)

    def handle(self, *args, **options) -> None:
        executor = MigrationExecutor(connections["default"])
        if executor.migration_plan(executor.loader.graph.leaf_nodes()):
            raise CommandError("The database has unapplied migrations: run 'python manage.py migrate' first.")
        if default_password_in_use():
            self.stderr.write(self.style.WARNING(
                "WARNING: user 'admin' still has the default password 'admin'. Change it at /admin/password_change/."
            ))
        removed = temp_cleanup()
        if removed:
            logger.warning("removed %d stale temp file(s) left by an interrupted write", removed)
        wanted = [s for s in options["services"].split(",") if s] or list(SERVICE_MODULES)
        unknown = set(wanted) - set(SERVICE_MODULES)
        if unknown:
            raise CommandError(f"Unknown service(s) {', '.join(sorted(unknown))}; use {', '.join(SERVICE_MODULES)}.")
        overrides = {}
        for service in wanted:
            port = options.get(f"{service}_port")
            if port is None:
                port = options["port"]
            if port is not None:
                overrides[service] = port

        workers = options["workers"]
        if not 1 <= workers <= 64:
            raise CommandError("--workers must be between 1 and 64.")
        parent = options["worker_of"]
        stop = threading.Event()

        def _signal(signum, _frame):
            stop.set()

        signal.signal(signal.SIGINT, _signal)
        signal.signal(signal.SIGTERM, _signal)

        group = None
        if parent:
            manager = self._follow_parent(options, wanted, stop)
        else:
            if workers > 1:
                group = WorkerGroup(workers, self._worker_args(options, wanted))
            manager = ListenerManager(
                bind_address=options["bind"], port_overrides=overrides, services=wanted,
                reuse_port=options["reuse_port"],
                load_board=group.board if group else None,
                on_listen=group.listen if group else None,
                on_stop=group.stop if group else None,
            )
        last_command = ListenerCommand.objects.order_by("-id").values_list("id", flat=True).first() or 0
        if not parent:
            status = manager.start()
            for service, state in status.items():
                if state["running"]:
                    self.stdout.write(f"{service} listener {state['ae_title']} on port {state['port']}")
                elif state["error"]:
                    self.stderr.write(self.style.ERROR(f"{service} listener not started: {state['error']}"))
            if not any(state["running"] for state in status.values()):
                if any(state["error"] for state in status.values()):
                    raise CommandError("No listener could be started.")
        if group is not None:
            group.start()
            self.stdout.write(f"started {workers - 1} more worker process(es): {', '.join(group.pids())}")
        # What is loaded by now (Django, pydicom's dictionaries, the listeners' contexts) lives
        # as long as the process: out of the collector's full passes, which pynetdicom forces
        # every 60 connections (each ~30 ms holding the GIL, seen as echo latency outliers).
        gc.freeze()
        self.stdout.write("runscp ready; Ctrl-C to stop.")
        sys.stdout.flush()

        started_at = timezone.now()
        key = manager.process_key
        next_heartbeat = 0.0
        next_rotate = 0.0
        try:
            while not stop.is_set():
                if parent and os.getppid() != parent:
                    logger.warning("runscp worker stopping: its parent process %s is gone", parent)
                    break
                now = time.monotonic()
                try:
                    if group is not None:
                        group.watch()
                    if not parent:  # workers follow their parent's listeners
                        last_command = self._apply_commands(manager, last_command)
                    if now >= next_heartbeat:
                        services.scp_process_heartbeat(
                            key=key, host=socket.gethostname(), pid=int(key.rsplit(":", 1)[1]),
                            started_at=started_at, listeners=manager.status(),
                        )
                        next_heartbeat = now + HEARTBEAT_SECONDS
                    if now >= next_rotate:
                        log_rotate()
                        next_rotate = now + ROTATE_SECONDS
                except Exception:  # the control loop must survive a database hiccup
                    logger.exception("runscp control loop error")
                    connections.close_all()
                stop.wait(POLL_SECONDS)
        finally:
            self.stdout.write("Stopping listeners...")
            if group is not None:
                group.shutdown()
            manager.shutdown()
            try:
                services.scp_process_remove(key=key)
            except Exception:
                logger.exception("could not remove process heartbeat")
            self.stdout.write("runscp stopped.")

    @staticmethod
    def _worker_args(options, wanted: list[str]) -> list[str]:
        args = [sys.executable, str(settings.BASE_DIR / "manage.py"), "runscp", "--worker-of", str(os.getpid()),
                "--services", ",".join(wanted)]
        if options["bind"]:
            args += ["--bind", options["bind"]]
        return args

    @staticmethod
    def _follow_parent(options, wanted: list[str], stop: threading.Event) -> ListenerManager:
        """A worker: serve the listeners whose sockets the parent sends, until it says stop."""
        board_fd, slots, slot = (int(part) for part in options["worker_board"].split(":"))
        board = LoadBoard(board_fd, slots, slot)
        manager = ListenerManager(bind_address=options["bind"], services=wanted, load_board=board)
        channel = socket.socket(fileno=options["worker_channel"])
        threading.Thread(target=follow_parent, args=(channel, manager, stop), name="runscp-follow",
                         daemon=True).start()
        return manager

    def _apply_commands(self, manager: ListenerManager, last_command: int) -> int:
        for command in ListenerCommand.objects.filter(id__gt=last_command).order_by("id"):
            action = getattr(manager, command.action)
            result = action(command.service or None)
            services.listener_command_complete(command_id=command.pk, result=result)
            logger.info("listener command applied id=%s action=%s service=%s", command.pk, command.action,
                        command.service or "all")
            last_command = command.pk
        return last_command

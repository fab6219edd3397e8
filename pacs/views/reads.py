"""Reads for the operations pages (status figures, job lists, log files).

Kept beside the views until the owning apps' selectors offer them; every
function runs a fixed number of queries and never writes.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
from collections import deque
from pathlib import Path

from django.conf import settings
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncMinute
from django.utils import timezone

from pacs.models import Instance, Job, Patient, Series, Study

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_LEVEL_RE = re.compile(r"\blevel=(\w+)")


def archive_counts() -> dict:
    """Patients, studies, series, instances and bytes stored."""
    return {
        "patients": Patient.objects.count(),
        "studies": Study.objects.count(),
        "series": Series.objects.count(),
        "instances": Instance.objects.count(),
        "bytes": Study.objects.aggregate(total=Sum("size_bytes"))["total"] or 0,
    }


def disk_usage() -> dict:
    usage = shutil.disk_usage(settings.PACS_STORAGE_ROOT)
    return {"total": usage.total, "used": usage.used, "free": usage.free}


def ingest_rate(*, minutes: int = 60) -> list[int]:
    """Instances received per minute over the last *minutes* (oldest first)."""
    now = timezone.now().replace(second=0, microsecond=0)
    start = now - datetime.timedelta(minutes=minutes - 1)
    buckets = {start + datetime.timedelta(minutes=i): 0 for i in range(minutes)}
    rows = (
        Instance.objects.filter(received_at__gte=start)
        .annotate(minute=TruncMinute("received_at"))
        .values("minute")
        .annotate(n=Count("id"))
    )
    for row in rows:
        # Aware datetimes compare and hash by their UTC instant, whatever the zone.
        if row["minute"] in buckets:
            buckets[row["minute"]] += row["n"]
    return list(buckets.values())


def system_load() -> dict:
    """CPU load and memory of this host (Linux /proc; empty elsewhere)."""
    result: dict = {"cpus": os.cpu_count() or 1}
    try:
        result["load"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        result["load"] = []
    try:
        meminfo = dict(
            (line.split(":")[0], int(line.split()[1]) * 1024)
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.split()[1:2] and line.split()[1].isdigit()
        )
        result["memory_total"] = meminfo.get("MemTotal", 0)
        result["memory_available"] = meminfo.get("MemAvailable", 0)
    except OSError:
        pass
    try:
        rss_pages = int(Path("/proc/self/statm").read_text().split()[1])
        result["process_rss"] = rss_pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    return result


def association_recent(*, limit: int = 15) -> list:
    from dimse.models import AssociationLog

    return list(AssociationLog.objects.all()[:limit])


def association_errors(*, limit: int = 10) -> list:
    from dimse.models import AssociationLog

    return list(AssociationLog.objects.filter(Q(status__in=["rejected", "aborted"]) | Q(failures__gt=0))[:limit])


def listener_states() -> list[dict]:
    """Each configured listener with its live state merged over every runscp process."""
    from dimse.selectors import scp_process_list
    from dimse.services import listener_config_list

    processes = scp_process_list()
    rows = []
    for config in listener_config_list():
        states = [p.listeners.get(config.service, {}) for p in processes]
        running = [s for s in states if s.get("running")]
        rows.append(
            {
                "service": config.service,
                "label": config.get_service_display(),
                "ae_title": config.ae_title,
                # The port a process really bound (runscp --port overrides the row) else the configured one.
                "port": next((s.get("port") for s in running if s.get("port")), config.port),
                "enabled": config.enabled,
                "running": bool(running),
                "processes": len(running),
                "active_associations": sum(s.get("active_associations", 0) for s in running),
                "error": "; ".join(s["error"] for s in states if s.get("error")),
            }
        )
    return rows


def job_search(*, state: str = "", kind: str = "") -> "QuerySet[Job]":  # noqa: F821
    rows = Job.objects.select_related("created_by")
    if state:
        rows = rows.filter(state=state)
    if kind:
        rows = rows.filter(kind=kind)
    return rows


def job_kinds_present() -> list[str]:
    return list(Job.objects.order_by("kind").values_list("kind", flat=True).distinct())


# --- Log files -------------------------------------------------------------------
def log_services() -> list[str]:
    return list(settings.PACS_LOG_SERVICES)


def log_path(service: str) -> Path:
    """The current log file of *service* (a known name only: nothing from the request reaches a path)."""
    if service not in settings.PACS_LOG_SERVICES:
        raise KeyError(service)
    return Path(settings.PACS_LOG_DIR) / f"{service}.log"


def log_archives(service: str) -> list[dict]:
    """Rotated files of *service* (``storage.log.1`` ...), newest first."""
    current = log_path(service)
    files = []
    for path in sorted(current.parent.glob(current.name + ".*")):
        suffix = path.name[len(current.name) + 1 :]
        if suffix.isdigit():
            stat = path.stat()
            files.append({"name": path.name, "index": int(suffix), "size": stat.st_size,
                          "modified": datetime.datetime.fromtimestamp(stat.st_mtime, tz=datetime.UTC)})
    return sorted(files, key=lambda f: f["index"])


def _level_of(line: str) -> str:
    match = _LEVEL_RE.search(line)
    return match.group(1).upper() if match else ""


def log_lines(service: str, *, level: str = "", search: str = "", limit: int = 500, offset: int | None = None) -> dict:
    """The last *limit* lines of a service log matching *level* (and above) and *search*.

    With *offset* (bytes), only lines appended after it (live tail); a file that
    shrank (rotated) is read from the start.  Reads backwards from the end, so
    a big file costs only what is shown.
    """
    path = log_path(service)
    minimum = LEVELS.index(level) if level in LEVELS else 0
    needle = search.lower()
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return {"offset": 0, "lines": [], "size": 0}
    if offset is not None and offset > size:
        offset = 0
    start = offset if offset is not None else max(0, size - 4 * 1024 * 1024)
    kept: deque = deque(maxlen=limit)
    with path.open("rb") as fh:
        fh.seek(start)
        if start and offset is None:
            fh.readline()  # partial first line
        for raw in fh:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            line_level = _level_of(line)
            if minimum and (line_level not in LEVELS or LEVELS.index(line_level) < minimum):
                continue
            if needle and needle not in line.lower():
                continue
            kept.append({"text": line, "level": line_level})
    return {"offset": size, "lines": list(kept), "size": size}


# --- Settings page ---------------------------------------------------------------
def allowed_callers_by_listener() -> dict[str, list]:
    """Calling-AE allow-list entries keyed by listener service ('' = every listener), in AE title order."""
    from dimse.models import AllowedCaller

    grouped: dict[str, list] = {}
    for row in AllowedCaller.objects.select_related("listener").order_by("ae_title", "host", "id"):
        grouped.setdefault(row.listener.service if row.listener_id else "", []).append(row)
    return grouped


def listener_command_get(command_id: int):
    """One control-channel command (start/stop/restart) and its outcome, or None."""
    from dimse.models import ListenerCommand

    return ListenerCommand.objects.filter(pk=command_id).first()


def runscp_running() -> bool:
    """Whether a runscp process has sent a recent heartbeat (it would apply a restart)."""
    from dimse.selectors import scp_process_list

    return bool(scp_process_list())

"""Writes of the dimse app: listener configuration, control commands, audit records."""

from __future__ import annotations

import datetime
import logging
import time

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy

from django.core.exceptions import ValidationError

from dimse.models import (
    AllowedCaller,
    AssociationLog,
    AssociationStatus,
    Listener,
    ListenerAction,
    ListenerCommand,
    ListenerService,
    ScpProcess,
)

logger = logging.getLogger(__name__)

LISTENER_SEEDS = {
    ListenerService.STORAGE: ("PACS_STORE_AET", "PACS_STORE_PORT"),
    ListenerService.WORKLIST: ("PACS_WORKLIST_AET", "PACS_WORKLIST_PORT"),
    ListenerService.QR: ("PACS_QR_AET", "PACS_QR_PORT"),
    ListenerService.PRINT: ("PACS_PRINT_AET", "PACS_PRINT_PORT"),
}


def listener_config_list() -> list[Listener]:
    """All listener rows, creating missing ones from the ``PACS_*`` settings."""
    existing = {row.service: row for row in Listener.objects.all()}
    for service, (aet_setting, port_setting) in LISTENER_SEEDS.items():
        if service not in existing:
            existing[service], _ = Listener.objects.get_or_create(
                service=service,
                defaults={
                    "ae_title": getattr(settings, aet_setting),
                    "port": getattr(settings, port_setting),
                    "max_associations": settings.PACS_MAX_ASSOCIATIONS,
                },
            )
    return [existing[s] for s in LISTENER_SEEDS]


def listener_config_update(*, service: str, **fields: object) -> Listener:
    """Validate and save fields of one listener; applied by the next restart."""
    listener_config_list()
    with transaction.atomic():
        listener = Listener.objects.select_for_update().get(service=service)
        for name, value in fields.items():
            if name in ("id", "service", "updated_at") or not hasattr(listener, name):
                raise ValueError(f"Unknown listener setting {name!r}")
            setattr(listener, name, value)
        listener.full_clean()
        listener.save()
    return listener


def listener_command_issue(*, action: str, service: str = "", user=None) -> ListenerCommand:
    """Ask every running ``runscp`` to start/stop/restart a listener (or all)."""
    ListenerAction(action)
    if service:
        ListenerService(service)
    command = ListenerCommand.objects.create(action=action, service=service, created_by=user)
    logger.info("listener command issued id=%s action=%s service=%s", command.pk, action, service or "all")
    return command


def listener_command_wait(command: ListenerCommand, timeout: float = 10.0) -> ListenerCommand:
    """Poll until a runscp process has processed *command* (or *timeout* passes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        command.refresh_from_db()
        if command.processed_at:
            return command
        time.sleep(0.1)
    return command


def listener_command_complete(*, command_id: int, result: dict) -> None:
    ListenerCommand.objects.filter(pk=command_id).update(processed_at=timezone.now(), result=result)


def scp_process_heartbeat(*, key: str, host: str, pid: int, started_at: datetime.datetime, listeners: dict) -> None:
    ScpProcess.objects.update_or_create(
        key=key,
        defaults={
            "host": host,
            "pid": pid,
            "started_at": started_at,
            "heartbeat_at": timezone.now(),
            "listeners": listeners,
        },
    )


def scp_process_remove(*, key: str) -> None:
    ScpProcess.objects.filter(key=key).delete()


def association_open(
    *,
    service: str,
    calling_aet: str,
    called_aet: str,
    peer_address: str,
    peer_port: int | None,
    status: str = AssociationStatus.ESTABLISHED,
    reason: str = "",
    process: str = "",
) -> int:
    """Record an association (established or rejected); return the log id."""
    row = AssociationLog.objects.create(
        service=service,
        calling_aet=calling_aet[:16],
        called_aet=called_aet[:16],
        peer_address=peer_address[:64],
        peer_port=peer_port,
        status=status,
        reason=reason[:255],
        started_at=timezone.now(),
        ended_at=timezone.now() if status == AssociationStatus.REJECTED else None,
        process=process[:64],
    )
    return row.pk


def association_close(
    *, log_id: int, status: str, instances_received: int, bytes_received: int, requests: int, failures: int
) -> None:
    """Close an association record with its counters."""
    AssociationLog.objects.filter(pk=log_id).update(
        status=status,
        ended_at=timezone.now(),
        instances_received=instances_received,
        bytes_received=bytes_received,
        requests=requests,
        failures=failures,
    )


def caller_host_validate(value: str) -> str:
    """Return the normalised host of an allow-list entry: '' (any host), an IP address or a host name.

    IP addresses come back in their canonical form (``::1``, ``10.0.0.5``), the
    form the listener compares with the peer address; host names lower-cased
    (RFC 1123 labels, at most 253 characters).

    Raises
    ------
    django.core.exceptions.ValidationError
        Neither an IP address nor a host name.
    """
    from pacs.services.config import host_normalise

    host = (value or "").strip()
    if not host:
        return ""
    try:
        return host_normalise(host)
    except ValueError:
        raise ValidationError({"host": [ValidationError(
            gettext_lazy("%(host)s is not an IP address or host name."), params={"host": repr(host[:80])})]}) from None


def allowed_caller_validate(
    *, service: str = "", ae_title: str, host: str = "", description: str = "",
    listeners: dict[str, Listener] | None = None,
) -> AllowedCaller:
    """An unsaved, validated allow-list entry (``service`` '' = every listener).

    The one validation of allow-list entries, used by the settings page, the
    control API (``PUT /api/dicom/settings``) and :func:`allowed_callers_replace`:
    AE title per PS3.5 (1-16 characters, no backslash or control characters,
    not only spaces; surrounding spaces are not significant), host an IP address
    or host name (:func:`caller_host_validate`).

    Raises
    ------
    django.core.exceptions.ValidationError
        Unknown listener, invalid AE title or host (``message_dict`` keyed by field).
    """
    if listeners is None:
        listeners = {row.service: row for row in listener_config_list()}
    if service and service not in listeners:
        raise ValidationError({"listener": [f"unknown listener {service!r}"]})
    row = AllowedCaller(
        listener=listeners[service] if service else None,
        ae_title=str(ae_title or "").strip(),
        host=caller_host_validate(str(host or "")),
        description=str(description or "").strip(),
    )
    row.full_clean()
    return row


def allowed_caller_add(*, service: str = "", ae_title: str, host: str = "", description: str = "") -> AllowedCaller:
    """Add one calling AE title (optionally bound to a host) to a listener's allow list.

    ``service`` '' adds it for every listener.  It takes effect at the next
    listener restart, and only on listeners whose ``restrict_callers`` is on.

    Raises
    ------
    django.core.exceptions.ValidationError
        Invalid entry (see :func:`allowed_caller_validate`) or already listed.
    """
    row = allowed_caller_validate(service=service, ae_title=ae_title, host=host, description=description)
    with transaction.atomic():
        duplicate = AllowedCaller.objects.select_for_update().filter(
            listener=row.listener, ae_title=row.ae_title, host=row.host
        )
        if duplicate.exists():
            raise ValidationError({"ae_title": [f"{row.ae_title}@{row.host or '*'} is already in this allow list."]})
        row.save()
    logger.info("allowed caller added service=%s ae_title=%s host=%s", service or "all", row.ae_title, row.host or "*")
    return row


def allowed_caller_remove(*, caller_id: int) -> bool:
    """Remove one allow-list entry; False when it no longer exists.  Applied by the next restart."""
    with transaction.atomic():
        # No select_related: PostgreSQL cannot lock the nullable side of the outer join to the listener.
        row = AllowedCaller.objects.select_for_update().filter(pk=caller_id).first()
        if row is None:
            return False
        service = row.listener.service if row.listener_id else "all"
        row.delete()
    logger.info("allowed caller removed service=%s ae_title=%s host=%s", service, row.ae_title, row.host or "*")
    return True


def allowed_callers_replace(*, entries: list[dict]) -> list[AllowedCaller]:
    """Replace the calling-AE allow list with *entries* (``service`` '' = every listener).

    Each entry: ``{"service", "ae_title", "host", "description"}``; every entry
    is validated by :func:`allowed_caller_validate` before anything is written
    (one transaction).  Applied by a listener restart.
    """
    listeners = {row.service: row for row in listener_config_list()}
    rows = [
        allowed_caller_validate(
            service=entry.get("service") or "", ae_title=entry.get("ae_title", ""), host=entry.get("host", ""),
            description=entry.get("description", ""), listeners=listeners,
        )
        for entry in entries
    ]
    with transaction.atomic():
        AllowedCaller.objects.all().delete()
        AllowedCaller.objects.bulk_create(rows)
    logger.info("allowed callers replaced count=%d", len(rows))
    return list(AllowedCaller.objects.select_related("listener"))

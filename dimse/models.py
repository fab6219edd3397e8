"""DICOM network configuration and records: listeners, callers, nodes, associations.

Configuration rows (Listener, AllowedCaller, RemoteNode) are edited in the
Django admin and through ``dimse.services``; records (AssociationLog,
ListenerCommand, ScpProcess) are written only by ``dimse.services``.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator
from django.db import models


def ae_title_validate(value: str) -> None:
    """PS3.5 AE VR: 1-16 characters, no backslash or control characters."""
    if not value or not value.strip() or len(value) > 16 or "\\" in value or not value.isprintable():
        raise ValidationError(f"{value!r} is not a valid AE title (1-16 printable characters, no backslash).")


class ListenerService(models.TextChoices):
    STORAGE = "storage", "Storage"
    WORKLIST = "worklist", "Modality Worklist"
    QR = "qr", "Query/Retrieve"
    PRINT = "print", "Print"


class Listener(models.Model):
    """One DIMSE listener of ``runscp`` (its own called AE title and port).

    Seeded from ``PACS_*_AET``/``PACS_*_PORT`` by ``listener_config_list``;
    edited in the admin/API; applied by a listener restart.
    """

    service = models.CharField(max_length=16, choices=ListenerService.choices, unique=True)
    ae_title = models.CharField(max_length=16, validators=[ae_title_validate])
    port = models.PositiveIntegerField(validators=[MaxValueValidator(65535)])
    enabled = models.BooleanField(default=True)
    require_called_aet = models.BooleanField(
        default=True, help_text="Reject associations whose called AE title is not this listener's."
    )
    restrict_callers = models.BooleanField(
        default=False, help_text="Accept only the calling AE titles (and hosts) in the allow list."
    )
    max_associations = models.PositiveIntegerField(default=32)
    acse_timeout = models.PositiveIntegerField(default=30, help_text="Seconds")
    dimse_timeout = models.PositiveIntegerField(default=60, help_text="Seconds")
    network_timeout = models.PositiveIntegerField(default=120, help_text="Seconds of idle before abort")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["service"]

    def __str__(self) -> str:
        return f"{self.get_service_display()} {self.ae_title}:{self.port}"


class AllowedCaller(models.Model):
    """An entry of a listener's calling-AE allow list, optionally bound to a host/IP."""

    listener = models.ForeignKey(
        to="dimse.Listener",
        on_delete=models.CASCADE,
        related_name="allowed_callers",
        null=True,
        blank=True,
        help_text="Empty: applies to every listener.",
    )
    ae_title = models.CharField(max_length=16, validators=[ae_title_validate])
    host = models.CharField(max_length=255, blank=True, help_text="IP address or host name; empty = any host.")
    description = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["ae_title"]

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host or '*'}"


class RemoteNode(models.Model):
    """A remote DICOM application entity: modality, workstation, PACS or printer."""

    ae_title = models.CharField(max_length=16, unique=True, validators=[ae_title_validate])
    host = models.CharField(max_length=255)
    port = models.PositiveIntegerField(validators=[MaxValueValidator(65535)])
    description = models.CharField(max_length=255, blank=True)
    is_store_destination = models.BooleanField("store destination", default=True)
    is_query_source = models.BooleanField("query/retrieve source", default=False)
    is_move_destination = models.BooleanField("move destination", default=True)
    is_printer = models.BooleanField("printer", default=False)
    preferred_transfer_syntax = models.CharField(
        max_length=64, blank=True, help_text="UID to send in when the peer accepts it; empty = as stored."
    )
    charset_override = models.CharField(
        max_length=64,
        blank=True,
        help_text="Specific Character Set to assume for what this AE sends (e.g. GB18030), "
        "whatever it declares.",
    )
    calling_aet = models.CharField(
        max_length=16, blank=True, help_text="Our calling AE title towards this node; empty = the listener's."
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["ae_title"]

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


class AssociationStatus(models.TextChoices):
    ESTABLISHED = "established", "Established"
    RELEASED = "released", "Released"
    ABORTED = "aborted", "Aborted"
    REJECTED = "rejected", "Rejected"


class AssociationLog(models.Model):
    """Audit record of one association received by a listener."""

    service = models.CharField(max_length=16, choices=ListenerService.choices, db_index=True)
    calling_aet = models.CharField(max_length=16, db_index=True)
    called_aet = models.CharField(max_length=16)
    peer_address = models.CharField(max_length=64)
    peer_port = models.PositiveIntegerField(null=True)
    status = models.CharField(max_length=16, choices=AssociationStatus.choices, db_index=True)
    reason = models.CharField(max_length=255, blank=True)
    started_at = models.DateTimeField(db_index=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    instances_received = models.PositiveIntegerField(default=0)
    bytes_received = models.BigIntegerField(default=0)
    requests = models.PositiveIntegerField(default=0)
    failures = models.PositiveIntegerField(default=0)
    process = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.calling_aet} -> {self.called_aet} ({self.status})"


class ListenerAction(models.TextChoices):
    START = "start", "Start"
    STOP = "stop", "Stop"
    RESTART = "restart", "Restart"


class ListenerCommand(models.Model):
    """Control channel: a start/stop/restart request that every runscp process obeys."""

    action = models.CharField(max_length=16, choices=ListenerAction.choices)
    service = models.CharField(
        max_length=16, choices=ListenerService.choices, blank=True, help_text="Empty: every listener."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        to=settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    processed_at = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.action} {self.service or 'all'}"


class ScpProcess(models.Model):
    """A running ``runscp`` process and the state of its listeners (heartbeat)."""

    key = models.CharField(max_length=128, unique=True)
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    heartbeat_at = models.DateTimeField(db_index=True)
    # {service: {"ae_title", "port", "running", "active_associations", "error"}}
    listeners = models.JSONField(default=dict)

    class Meta:
        ordering = ["host", "pid"]
        verbose_name = "runscp process"

    def __str__(self) -> str:
        return self.key

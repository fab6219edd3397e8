"""Reads of the dimse app."""

from __future__ import annotations

import datetime

from django.utils import timezone

from dimse.models import RemoteNode, ScpProcess

HEARTBEAT_STALE_SECONDS = 15


def node_charset_override(ae_title: str) -> str:
    """The charset override configured for a calling AE title ('' when none)."""
    value = (
        RemoteNode.objects.filter(ae_title=ae_title.strip(), enabled=True)
        .values_list("charset_override", flat=True)
        .first()
    )
    return value or ""


def scp_process_list(*, alive_only: bool = True) -> list[ScpProcess]:
    """runscp processes, by default only those with a recent heartbeat."""
    rows = ScpProcess.objects.all()
    if alive_only:
        cutoff = timezone.now() - datetime.timedelta(seconds=HEARTBEAT_STALE_SECONDS)
        rows = rows.filter(heartbeat_at__gte=cutoff)
    return list(rows)

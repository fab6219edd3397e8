"""Worklist housekeeping: finished items leave the worklist after the retention period."""

from __future__ import annotations

import datetime
import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from worklist.choices import FINAL_STATUSES, StepStatus
from worklist.models import WorklistItem

logger = logging.getLogger(__name__)

PURGE_SCHEDULE_NAME = "worklist-purge"
PURGE_TASK = "worklist.tasks.worklist_items_purge_task"


def worklist_items_purge(*, older_than_days: int | None = None, now: datetime.datetime | None = None) -> int:
    """Delete items whose steps are all COMPLETED/DISCONTINUED since before the cut-off.

    Parameters
    ----------
    older_than_days
        Retention in days (default ``settings.PACS_WORKLIST_RETENTION_DAYS``).
    now
        Reference time (default: now).

    Returns
    -------
    int
        How many worklist items were removed (their MPPS records stay).
    """
    days = settings.PACS_WORKLIST_RETENTION_DAYS if older_than_days is None else older_than_days
    cutoff = (now or timezone.now()) - datetime.timedelta(days=days)
    open_statuses = [s for s in StepStatus.values if s not in FINAL_STATUSES]
    with transaction.atomic():
        done = (
            WorklistItem.objects.filter(steps__isnull=False)
            .exclude(steps__scheduled_procedure_step_status__in=open_statuses)
            .exclude(steps__status_changed_at__gte=cutoff)
            .values_list("pk", flat=True)
            .distinct()
        )
        ids = list(done)
        WorklistItem.objects.filter(pk__in=ids).delete()
    logger.info("worklist purge removed=%d retention_days=%d", len(ids), days)
    return len(ids)


def worklist_purge_schedule_ensure() -> bool:
    """Create the daily django-q2 Schedule of :func:`worklist_items_purge` unless it exists.

    Returns
    -------
    bool
        True when the schedule was created now.
    """
    from django_q.models import Schedule

    _, created = Schedule.objects.get_or_create(
        name=PURGE_SCHEDULE_NAME,
        defaults={"func": PURGE_TASK, "schedule_type": Schedule.DAILY, "repeats": -1},
    )
    return created

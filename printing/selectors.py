"""Reads of the printing app: print jobs with their films (one query each level, no N+1)."""

from __future__ import annotations

import datetime

from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone

from printing.models import Film, PrintJob


def print_job_list() -> QuerySet[PrintJob]:
    """Print jobs newest first, films prefetched in film order."""
    films = Film.objects.order_by("film_number").only(
        "id",
        "print_job_id",
        "film_number",
        "image_display_format",
        "film_size_id",
        "film_orientation",
        "rows",
        "columns",
        "number_of_images",
        "sop_instance_uid",
        "instance_id",
        "created_at",
    )
    return PrintJob.objects.prefetch_related(Prefetch("films", queryset=films)).order_by("-created_at", "-id")


def film_get(*, print_job_id: int, film_number: int) -> Film | None:
    """One film of a print job, with its archived instance (for downloads)."""
    return Film.objects.select_related("instance").filter(print_job_id=print_job_id, film_number=film_number).first()


def print_job_search(
    *,
    status: str = "",
    calling_aet: str = "",
    date_from: datetime.date | None = None,
    date_to: datetime.date | None = None,
    text: str = "",
) -> QuerySet[PrintJob]:
    """Print jobs of the web list: status, calling AE, received between two local dates, free text.

    *text* is looked for in the session label, owner ID, film destination, medium
    type, failure reason and peer address, and matches a Film Session UID exactly.
    """
    rows = print_job_list()
    if status:
        rows = rows.filter(status=status)
    if calling_aet:
        rows = rows.filter(calling_aet__iexact=calling_aet.strip())
    # Local-day bounds as aware datetimes, so the created_at index serves the range.
    if date_from:
        rows = rows.filter(created_at__gte=_day_start(date_from))
    if date_to:
        rows = rows.filter(created_at__lt=_day_start(date_to + datetime.timedelta(days=1)))
    text = text.strip()
    if text:
        rows = rows.filter(
            Q(film_session_label__icontains=text)
            | Q(owner_id__icontains=text)
            | Q(film_destination__icontains=text)
            | Q(medium_type__icontains=text)
            | Q(failure_reason__icontains=text)
            | Q(peer_address__icontains=text)
            | Q(film_session_uid=text)
        )
    return rows


def _day_start(day: datetime.date) -> datetime.datetime:
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))


def print_job_get(*, job_id: int) -> PrintJob:
    """One print job with every film (full snapshots), in film order. Raises ``PrintJob.DoesNotExist``."""
    films = Film.objects.order_by("film_number").select_related("instance")
    return PrintJob.objects.prefetch_related(Prefetch("films", queryset=films)).get(pk=job_id)


def print_job_association(job: PrintJob):
    """The print association that opened *job* (audit log), or None when it is no longer logged."""
    from dimse.models import AssociationLog, ListenerService

    rows = AssociationLog.objects.filter(
        service=ListenerService.PRINT, calling_aet=job.calling_aet, started_at__lte=job.created_at
    ).filter(Q(ended_at__isnull=True) | Q(ended_at__gte=job.created_at))
    if job.peer_address:
        rows = rows.filter(peer_address=job.peer_address)
    return rows.order_by("-started_at").first()


def print_job_forwards(*, job_id: int) -> QuerySet:
    """The ``print-forward`` background jobs that re-print *job_id*, newest first."""
    from pacs.models import Job
    from printing.services.print_jobs import FORWARD_JOB_KIND

    return Job.objects.filter(kind=FORWARD_JOB_KIND, params__print_job_id=job_id).order_by("-created_at", "-id")


def printer_node_list() -> list:
    """Enabled remote nodes with the printer role (forward destinations)."""
    from dimse.models import RemoteNode

    return list(RemoteNode.objects.filter(is_printer=True, enabled=True).order_by("ae_title"))

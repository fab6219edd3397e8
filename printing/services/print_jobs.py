"""Print job records: status changes, deletion and forwarding to printers (the print gateway).

The one write path for ``PrintJob`` status and counts, ``PrintForwardRule``
application and the creation of ``print-forward`` background jobs.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from dimse.models import RemoteNode
from pacs.models import Job
from pacs.services.jobs import job_create
from printing.choices import PrintJobStatus
from printing.exceptions import ForwardError
from printing.models import Film, FilmBox, PrintForwardRule, PrintJob
from printing.services import files

logger = logging.getLogger(__name__)

FORWARD_JOB_KIND = "print-forward"


def print_job_fail(*, job_id: int, reason: str) -> None:
    """Mark a print job FAILURE with *reason* (kept in ``errors`` too)."""
    with transaction.atomic():
        job = PrintJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None:
            return
        job.status = PrintJobStatus.FAILURE
        job.failure_reason = reason[:255]
        job.errors = [*job.errors, reason[:255]][-50:]
        job.save(update_fields=["status", "failure_reason", "errors", "updated_at"])
    logger.warning("print job failed print_job=%s reason=%s", job_id, reason)


def print_job_status_set(*, job_id: int, status: str) -> None:
    PrintJob.objects.filter(pk=job_id).update(status=status, updated_at=timezone.now())


def print_job_session_close(*, job_id: int, reason: str) -> None:
    """End a film session (N-DELETE or association end): its boxes go, printed films stay.

    A session that ends with no film printed leaves its job FAILURE with *reason*.
    """
    with transaction.atomic():
        job = PrintJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.session_closed_at is not None:
            return
        FilmBox.objects.filter(print_job=job).delete()
        job.session_closed_at = timezone.now()
        fields = ["session_closed_at", "updated_at"]
        if job.number_of_films == 0 and job.status != PrintJobStatus.FAILURE:
            job.status = PrintJobStatus.FAILURE
            job.failure_reason = reason[:255]
            job.errors = [*job.errors, reason[:255]]
            fields += ["status", "failure_reason", "errors"]
        job.save(update_fields=fields)
    logger.info("film session closed print_job=%s films=%d status=%s", job_id, job.number_of_films, job.status)


def print_job_printed(*, job_id: int, films: list[Film], complete: bool = True) -> list[Job]:
    """Record printed films (counts; status DONE when *complete*) and apply the forwarding rules.

    ``complete=False`` only counts the films made before a failure.
    Returns the ``print-forward`` jobs created by matching rules.
    """
    fields = {
        "updated_at": timezone.now(),
        "number_of_films": F("number_of_films") + len(films),
        "number_of_images": F("number_of_images") + sum(film.number_of_images for film in films),
    }
    if complete:
        fields.update(status=PrintJobStatus.DONE, printed_at=timezone.now())
    PrintJob.objects.filter(pk=job_id).update(**fields)
    if not complete:
        return []
    job = PrintJob.objects.get(pk=job_id)
    rules = (
        PrintForwardRule.objects.filter(enabled=True, printer__enabled=True, printer__is_printer=True)
        .filter(calling_aet__in=[job.calling_aet, "*"])
        .select_related("printer")
    )
    forwards = []
    for rule in rules:
        try:
            forwards.append(
                print_job_forward(print_job_id=job_id, node_id=rule.printer_id, film_ids=[film.pk for film in films])
            )
        except Exception as exc:  # the films are printed: a queue outage must not fail the N-ACTION
            logger.exception("print forward rule failed print_job=%s rule=%s", job_id, rule.pk)
            _job_error_add(job_id, f"Forwarding to {rule.printer.ae_title} could not be queued: {exc}")
            continue
        logger.info("print forwarded by rule print_job=%s rule=%s printer=%s", job_id, rule.pk, rule.printer.ae_title)
    return forwards


def _job_error_add(job_id: int, message: str) -> None:
    with transaction.atomic():
        job = PrintJob.objects.select_for_update().get(pk=job_id)
        job.errors = [*job.errors, message[:255]][-50:]
        job.save(update_fields=["errors", "updated_at"])


def print_job_forward(
    *, print_job_id: int, node_id: int, film_ids: list[int] | None = None, user=None, enqueue: bool = True
) -> Job:
    """Queue the forwarding of a print job's films to a printer node (re-print).

    Parameters
    ----------
    film_ids
        Films to send (default: every film of the job), each rebuilt with its
        original layout, attributes and image box pixels.

    Raises
    ------
    ForwardError
        The node is not an enabled printer or the job has no film to send.
    """
    node = RemoteNode.objects.filter(pk=node_id).first()
    if node is None or not node.is_printer or not node.enabled:
        raise ForwardError(f"Remote node {node_id} is not an enabled printer")
    films = Film.objects.filter(print_job_id=print_job_id)
    if film_ids:
        films = films.filter(pk__in=film_ids)
    ids = list(films.order_by("film_number").values_list("pk", flat=True))
    if not ids:
        raise ForwardError(f"Print job {print_job_id} has no film to forward")
    return job_create(
        kind=FORWARD_JOB_KIND,
        params={"print_job_id": print_job_id, "node_id": node.pk, "film_ids": ids},
        description=f"Print job {print_job_id} to {node.ae_title}",
        user=user,
        enqueue=enqueue,
    )


def print_job_delete(*, job_id: int) -> None:
    """Delete a print job, its films' previews and the received image box pixels.

    The composed Secondary Capture instances stay in the archive (they are
    studies like any other and are deleted there).
    """
    with transaction.atomic():
        PrintJob.objects.filter(pk=job_id).delete()
        transaction.on_commit(lambda: files.job_folder_remove(job_id))
    logger.info("print job deleted print_job=%s", job_id)

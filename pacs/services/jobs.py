"""Background jobs: the one write path for Job rows, and their runner.

Each app registers a runner per job kind in its ``AppConfig.ready``::

    job_kind_register("send", "dimse.jobs.study_send_run")

A runner is ``def run(job: Job, progress: JobProgress) -> dict`` returning the
job's result; it reports progress with ``progress.update(done=..., failed=...,
total=...)`` and raises :class:`JobFailed` (or any exception) to fail.  A failed
job is retried with exponential backoff until ``max_attempts``; it can also be
re-run by hand (``job_retry``).
"""

from __future__ import annotations

import datetime
import importlib
import logging
from collections.abc import Callable

from django.db import transaction
from django.utils import timezone

from pacs.choices import JobState
from pacs.models import Job

logger = logging.getLogger("pacs.tasks")

_RUNNERS: dict[str, str] = {}
RETRY_BASE_SECONDS = 30


class JobFailed(Exception):
    """Raised by a runner to fail its job with a clear message."""

    def __init__(self, message: str, *, retry: bool = True) -> None:
        super().__init__(message)
        self.retry = retry


def job_kind_register(kind: str, runner_path: str) -> None:
    """Register the dotted path of the runner function for *kind*."""
    _RUNNERS[kind] = runner_path


def job_kinds() -> list[str]:
    return sorted(_RUNNERS)


class JobProgress:
    """Progress reporter handed to runners (writes at most a few times a second)."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self._last = 0.0

    def update(self, *, done: int | None = None, failed: int | None = None, total: int | None = None,
               force: bool = False) -> None:
        fields = {}
        if done is not None:
            fields["progress_done"] = done
        if failed is not None:
            fields["progress_failed"] = failed
        if total is not None:
            fields["progress_total"] = total
        for key, value in fields.items():
            setattr(self.job, key, value)
        now = timezone.now().timestamp()
        if fields and (force or now - self._last >= 0.25):
            Job.objects.filter(pk=self.job.pk).update(**fields)
            self._last = now

    def error(self, message: str) -> None:
        """Record a non-fatal error (e.g. one failed sub-operation)."""
        self.job.errors = [*self.job.errors, message][-100:]
        Job.objects.filter(pk=self.job.pk).update(errors=self.job.errors)

    def cancelled(self) -> bool:
        return Job.objects.filter(pk=self.job.pk, state=JobState.CANCELLED).exists()


def job_create(*, kind: str, params: dict, description: str = "", user=None, max_attempts: int = 3,
               enqueue: bool = True) -> Job:
    """Create a job and queue it on the django-q2 cluster.

    Raises
    ------
    ValueError
        Unknown job kind.
    """
    if kind not in _RUNNERS:
        raise ValueError(f"Unknown job kind {kind!r}; known: {', '.join(job_kinds())}")
    job = Job.objects.create(kind=kind, params=params, description=description[:255], created_by=user,
                             max_attempts=max_attempts)
    logger.info("job created id=%s kind=%s", job.pk, kind)
    if enqueue:
        transaction.on_commit(lambda: _enqueue(job.pk))
    return job


def _enqueue(job_id: int, delay_seconds: int = 0) -> None:
    from django_q.models import Schedule
    from django_q.tasks import async_task

    if delay_seconds <= 0:
        async_task("pacs.tasks.job_run", job_id, group="jobs")
        return
    Schedule.objects.create(
        func="pacs.tasks.job_run",
        args=repr((job_id,)),
        schedule_type=Schedule.ONCE,
        repeats=1,
        next_run=timezone.now() + datetime.timedelta(seconds=delay_seconds),
        name=f"job-{job_id}-retry-{timezone.now().timestamp():.0f}",
    )


def job_execute(*, job_id: int) -> Job:
    """Run a job now in this process (the django-q2 task calls this).

    Returns the job in its final (or retrying) state.
    """
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job_id)
        if job.state in (JobState.RUNNING, JobState.SUCCESS, JobState.CANCELLED):
            return job
        job.state = JobState.RUNNING
        job.attempts += 1
        job.started_at = timezone.now()
        job.next_attempt_at = None
        job.save(update_fields=["state", "attempts", "started_at", "next_attempt_at"])
    runner = _runner(job.kind)
    progress = JobProgress(job)
    try:
        result = runner(job, progress) or {}
    except Exception as exc:  # a job failure must be recorded, whatever raised it
        return _job_failed(job, exc)
    progress.update(force=True, done=job.progress_done)
    if Job.objects.filter(pk=job.pk, state=JobState.CANCELLED).exists():
        return Job.objects.get(pk=job.pk)
    Job.objects.filter(pk=job.pk).update(state=JobState.SUCCESS, result=result, finished_at=timezone.now())
    logger.info("job success id=%s kind=%s", job.pk, job.kind)
    return Job.objects.get(pk=job.pk)


def _job_failed(job: Job, exc: Exception) -> Job:
    message = str(exc) or exc.__class__.__name__
    retry = getattr(exc, "retry", True) and job.attempts < job.max_attempts
    errors = [*Job.objects.get(pk=job.pk).errors, message][-100:]
    if retry:
        delay = RETRY_BASE_SECONDS * (2 ** (job.attempts - 1))
        Job.objects.filter(pk=job.pk).update(
            state=JobState.RETRYING, errors=errors,
            next_attempt_at=timezone.now() + datetime.timedelta(seconds=delay),
        )
        logger.warning("job failed id=%s kind=%s attempt=%d retry_in=%ds error=%s", job.pk, job.kind,
                       job.attempts, delay, message)
        _enqueue(job.pk, delay)
    else:
        Job.objects.filter(pk=job.pk).update(state=JobState.FAILURE, errors=errors, finished_at=timezone.now())
        logger.error("job failed id=%s kind=%s attempt=%d error=%s", job.pk, job.kind, job.attempts, message)
    return Job.objects.get(pk=job.pk)


def job_retry(*, job_id: int) -> Job:
    """Re-run a failed or cancelled job from the start."""
    job = Job.objects.get(pk=job_id)
    if job.state in (JobState.PENDING, JobState.RUNNING):
        raise ValueError(f"Job {job_id} is {job.state}; only finished jobs can be re-run")
    Job.objects.filter(pk=job_id).update(state=JobState.PENDING, progress_done=0, progress_failed=0,
                                         finished_at=None, next_attempt_at=None, attempts=0)
    _enqueue(job_id)
    return Job.objects.get(pk=job_id)


def job_cancel(*, job_id: int) -> Job:
    """Cancel a job; a running runner sees it through ``progress.cancelled()``."""
    Job.objects.filter(pk=job_id).exclude(state__in=[JobState.SUCCESS, JobState.FAILURE]).update(
        state=JobState.CANCELLED, finished_at=timezone.now()
    )
    return Job.objects.get(pk=job_id)


def _runner(kind: str) -> Callable:
    path = _RUNNERS.get(kind)
    if not path:
        raise JobFailed(f"No runner registered for job kind {kind!r}", retry=False)
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)

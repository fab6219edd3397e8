"""django-q2 tasks of the archive: one-line wrappers around services."""

from __future__ import annotations

from django_q.tasks import async_task

from pacs.services.compression import instance_compress
from pacs.services.jobs import job_execute


def instance_compress_task(instance_id: int) -> str:
    return instance_compress(instance_id=instance_id)


def job_run(job_id: int) -> str:
    return job_execute(job_id=job_id).state


def compression_enqueue(instance_id: int) -> None:
    """Queue background compression of a freshly ingested instance."""
    async_task("pacs.tasks.instance_compress_task", instance_id, group="compression")

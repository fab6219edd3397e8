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


# --- Query/Retrieve page ---------------------------------------------------------------
QR_JOB_KINDS = ("query", "retrieve")


def query_node_list():
    """Enabled remote nodes with the query/retrieve role (a queryset, for form choices)."""
    return RemoteNode.objects.filter(enabled=True, is_query_source=True).order_by("ae_title")


def qr_job_get(*, job_id: int, user, kind: str):
    """The *kind* job *job_id* if *user* may see it (its creator, or a superuser); else None.

    Query results hold remote patient data: they are shown only to who asked.
    """
    from pacs.models import Job

    rows = Job.objects.filter(pk=job_id, kind=kind)
    if not user.is_superuser:
        rows = rows.filter(created_by=user)
    return rows.first()


def qr_job_list(*, user, kind: str, ids: list[int] | None = None, limit: int = 10) -> list:
    """The user's latest *kind* jobs (or those of *ids* among them), newest first."""
    from pacs.models import Job

    rows = Job.objects.filter(kind=kind)
    if not user.is_superuser:
        rows = rows.filter(created_by=user)
    if ids is not None:
        rows = rows.filter(pk__in=ids)
    return list(rows.order_by("-created_at", "-id")[:limit])


def archived_study_counts(study_instance_uids: list[str]) -> dict[str, int]:
    """{StudyInstanceUID: instances we hold} for the UIDs already in the archive (one query)."""
    from pacs.models import Study

    if not study_instance_uids:
        return {}
    rows = Study.objects.filter(study_instance_uid__in=set(study_instance_uids))
    return dict(rows.values_list("study_instance_uid", "number_of_study_related_instances"))


def archived_series_counts(series_instance_uids: list[str]) -> dict[str, int]:
    """{SeriesInstanceUID: instances we hold} for the UIDs already in the archive (one query)."""
    from pacs.models import Series

    if not series_instance_uids:
        return {}
    rows = Series.objects.filter(series_instance_uid__in=set(series_instance_uids))
    return dict(rows.values_list("series_instance_uid", "number_of_series_related_instances"))

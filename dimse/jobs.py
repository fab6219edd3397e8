"""Job runners of the SCU operations (registered in ``DimseConfig.ready``).

Create jobs with :func:`pacs.services.jobs.job_create`; parameters per kind:

``send``
    ``{"node": AE, "study_instance_uids": [...], "series_instance_uids": [...],
    "sop_instance_uids": [...]}`` (any combination) - C-STORE to the node.
``query``
    ``{"node": AE, "level": "STUDY", "filters": {"PatientID": "P1"},
    "keys": ["StudyDescription"], "root": "STUDY"}`` - C-FIND; the matches (DICOM
    JSON) are the job result ``{"matches": [...], "count": n}``.
``retrieve``
    ``{"node": AE, "level": "STUDY", "filters": {"StudyInstanceUID": uid},
    "method": "move" | "get", "root": "STUDY"}`` - C-MOVE to our Storage AE or
    C-GET, into the archive.
``verify``
    ``{"node": AE}`` - C-ECHO.

Runners report progress (done/failed/total), raise ``JobFailed`` so the job
service retries with backoff; a bad parameter fails without retry.
"""

from __future__ import annotations

import logging

from django.db.models import Q

from dimse import scu
from pacs.exceptions import InvalidUID
from pacs.matching import LEVELS
from pacs.models import Instance
from pacs.services.jobs import JobFailed, JobProgress
from pacs.storage import uid_validate

logger = logging.getLogger(__name__)

JOB_KINDS = {
    "send": "dimse.jobs.study_send_run",
    "query": "dimse.jobs.node_query_run",
    "retrieve": "dimse.jobs.node_retrieve_run",
    "verify": "dimse.jobs.node_verify_run",
}


def _node(params: dict):
    try:
        return scu.node_get(str(params.get("node", "")))
    except scu.ScuError as exc:
        raise JobFailed(str(exc), retry=False) from exc


def _uids(params: dict, key: str) -> list[str]:
    values = params.get(key) or []
    if isinstance(values, str):
        values = [values]
    try:
        return [uid_validate(str(v), key) for v in values]
    except InvalidUID as exc:
        raise JobFailed(exc.message, retry=False) from exc


def _level(params: dict) -> str:
    level = str(params.get("level", "STUDY")).upper()
    if level not in LEVELS:
        raise JobFailed(f"Unknown level {level!r}; use {', '.join(LEVELS)}", retry=False)
    return level


def send_instances(params: dict):
    """The archived instances a ``send`` job names."""
    studies = _uids(params, "study_instance_uids")
    series = _uids(params, "series_instance_uids")
    sops = _uids(params, "sop_instance_uids")
    if not (studies or series or sops):
        raise JobFailed("Nothing to send: give study, series or SOP instance UIDs", retry=False)
    q = Q(series__study__study_instance_uid__in=studies) | Q(series__series_instance_uid__in=series)
    q |= Q(sop_instance_uid__in=sops)
    return Instance.objects.filter(q)


def study_send_run(job, progress: JobProgress) -> dict:
    """C-STORE studies/series/instances to a node; failed instances fail the attempt (it retries)."""
    node = _node(job.params)
    instances = send_instances(job.params)
    total = instances.count()
    if not total:
        raise JobFailed("None of the requested instances is in the archive", retry=False)
    progress.update(done=0, failed=0, total=total, force=True)
    try:
        result = scu.instances_send(
            node=node,
            instances=instances,
            progress=lambda r: progress.update(done=r.done + r.warning, failed=r.failed),
            cancelled=progress.cancelled,
        )
    except scu.ScuError as exc:
        raise JobFailed(str(exc)) from exc
    progress.update(done=result.done + result.warning, failed=result.failed, total=result.total, force=True)
    for error in result.errors[:20]:
        progress.error(error)
    if result.failed:
        raise JobFailed(f"{result.failed} of {result.total} instances were not stored by {node.ae_title}")
    return result.as_dict()


def node_query_run(job, progress: JobProgress) -> dict:
    """C-FIND a node; the matches are the job result."""
    node = _node(job.params)
    level = _level(job.params)
    filters = {str(k): str(v) for k, v in (job.params.get("filters") or {}).items()}
    keys = [str(k) for k in job.params.get("keys") or []]
    try:
        matches, status = scu.node_find(node=node, level=level, filters=filters, keys=keys,
                                        root=str(job.params.get("root", "STUDY")).upper(),
                                        cancelled=progress.cancelled)
    except scu.ScuError as exc:
        raise JobFailed(str(exc)) from exc
    progress.update(done=len(matches), total=len(matches), force=True)
    return {"matches": matches, "count": len(matches), "status": f"0x{status:04X}"}


def node_retrieve_run(job, progress: JobProgress) -> dict:
    """C-MOVE (to our Storage AE) or C-GET from a node into the archive."""
    node = _node(job.params)
    level = _level(job.params)
    filters = {str(k): str(v) for k, v in (job.params.get("filters") or {}).items()}
    method = str(job.params.get("method", "move")).lower()
    if method not in ("move", "get"):
        raise JobFailed(f"Unknown retrieve method {method!r}; use move or get", retry=False)
    operation = scu.node_c_move if method == "move" else scu.node_c_get
    try:
        result = operation(
            node=node, level=level, filters=filters, root=str(job.params.get("root", "STUDY")).upper(),
            progress=lambda r: progress.update(done=r.done + r.warning, failed=r.failed, total=r.total),
        )
    except scu.ScuError as exc:
        raise JobFailed(str(exc)) from exc
    progress.update(done=result.done + result.warning, failed=result.failed, total=result.total, force=True)
    if result.failed:
        raise JobFailed(f"{result.failed} of {result.total} sub-operations failed ({method})")
    return {**result.as_dict(), "method": method}


def node_verify_run(job, progress: JobProgress) -> dict:
    """C-ECHO a node."""
    node = _node(job.params)
    result = scu.node_verify(node=node)
    progress.update(done=1 if result.ok else 0, failed=0 if result.ok else 1, total=1, force=True)
    if not result.ok:
        raise JobFailed(result.message)
    return {"status": f"0x{result.status:04X}", "ms": round(result.ms, 1), "message": result.message}

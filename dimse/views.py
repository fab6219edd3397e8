"""Query/Retrieve page: C-FIND a remote node, expand studies to series, retrieve into the archive.

Every DIMSE operation runs as a job of :mod:`dimse.jobs` (kinds ``query`` and
``retrieve``) created through :func:`pacs.services.jobs.job_create`, so it is
tracked, listed on the Jobs page and runs on the django-q2 cluster, never in a
web worker.  The page polls two small JSON views for job state.  Matches come
back from the remote node as DICOM JSON (PS3.18 F.2) and are attacker-controlled:
they reach the page only through autoescaped templates.
"""

from __future__ import annotations

import datetime
import logging
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.http import Http404, JsonResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views import View
from django.views.generic import TemplateView
from pydicom.datadict import tag_for_keyword

from dimse import selectors
from dimse.forms import SERIES_KEYS, STUDY_KEYS, RetrieveForm, StudyQueryForm
from pacs.choices import JobState
from pacs.storage import uid_is_valid
from pacs.views.mixins import PageMixin
from pacs.views.operations import job_json

logger = logging.getLogger(__name__)

MAX_ROWS = 500  # rows rendered per result table; the job keeps every match
FINISHED = (JobState.SUCCESS, JobState.FAILURE, JobState.CANCELLED)


# --- DICOM JSON matches -> display rows ------------------------------------------------
def _values(match: dict, keyword: str) -> list:
    return (match.get(f"{tag_for_keyword(keyword):08X}") or {}).get("Value") or []


def _text(match: dict, keyword: str) -> str:
    values = _values(match, keyword)
    return "" if not values or values[0] is None else str(values[0])


def _person_name(match: dict, keyword: str = "PatientName") -> str:
    """A PN value of DICOM JSON back in its ``alphabetic=ideographic=phonetic`` form."""
    values = _values(match, keyword)
    if not values or not isinstance(values[0], dict):
        return _text(match, keyword)
    groups = [str(values[0].get(key) or "") for key in ("Alphabetic", "Ideographic", "Phonetic")]
    return "=".join(groups).rstrip("=")


def _date(value: str) -> str:
    try:
        return datetime.datetime.strptime(value[:8], "%Y%m%d").date().isoformat()
    except ValueError:
        return value


def _number(match: dict, keyword: str) -> int | None:
    try:
        return int(_text(match, keyword))
    except ValueError:
        return None


def study_rows(job) -> tuple[list[dict], int]:
    """Display rows of a study-level query job (newest first, at most MAX_ROWS) and the match count."""
    matches = (job.result or {}).get("matches") or []
    rows = []
    for match in matches:
        uid = _text(match, "StudyInstanceUID")
        time = _text(match, "StudyTime")
        rows.append({
            "uid": uid, "uid_valid": uid_is_valid(uid),
            "patient_name": _person_name(match), "patient_id": _text(match, "PatientID"),
            "birth_date": _date(_text(match, "PatientBirthDate")),
            "date": _date(_text(match, "StudyDate")), "time": f"{time[:2]}:{time[2:4]}" if len(time) >= 4 else "",
            "description": _text(match, "StudyDescription"), "accession": _text(match, "AccessionNumber"),
            "modalities": ", ".join(str(v) for v in _values(match, "ModalitiesInStudy") if v),
            "series": _number(match, "NumberOfStudyRelatedSeries"),
            "instances": _number(match, "NumberOfStudyRelatedInstances"),
        })
    rows.sort(key=lambda r: (r["date"], r["time"]), reverse=True)
    rows = rows[:MAX_ROWS]
    archived = selectors.archived_study_counts([r["uid"] for r in rows if r["uid_valid"]])
    for row in rows:
        row["archived"] = archived.get(row["uid"])
    return rows, len(matches)


def series_rows(job) -> list[dict]:
    """Display rows of a series-level query job (by series number)."""
    rows = []
    for match in ((job.result or {}).get("matches") or [])[:MAX_ROWS]:
        uid = _text(match, "SeriesInstanceUID")
        rows.append({
            "uid": uid, "uid_valid": uid_is_valid(uid), "number": _number(match, "SeriesNumber"),
            "modality": _text(match, "Modality"), "description": _text(match, "SeriesDescription"),
            "date": _date(_text(match, "SeriesDate")), "instances": _number(match, "NumberOfSeriesRelatedInstances"),
        })
    rows.sort(key=lambda r: (r["number"] is None, r["number"] or 0, r["uid"]))
    archived = selectors.archived_series_counts([r["uid"] for r in rows if r["uid_valid"]])
    for row in rows:
        row["archived"] = archived.get(row["uid"])
    return rows


def _study_label(match: dict) -> str:
    from pacs.templatetags.pacs_tags import person_name

    parts = [person_name(_person_name(match)), _date(_text(match, "StudyDate")), _text(match, "StudyDescription")]
    return " · ".join(p for p in parts if p) or _text(match, "StudyInstanceUID")


def _series_label(match: dict) -> str:
    parts = [f"#{_text(match, 'SeriesNumber')}" if _text(match, "SeriesNumber") else "",
             _text(match, "Modality"), _text(match, "SeriesDescription")]
    return " ".join(p for p in parts if p) or _text(match, "SeriesInstanceUID")


def _results_html(request, job) -> str:
    """The rendered (autoescaped) result table of a finished query job."""
    level = str(job.params.get("level", "STUDY")).upper()
    context = {"job": job, "node": job.params.get("node", ""), "request": request}
    if level == "SERIES":
        context.update(series_list=series_rows(job),
                       study_uid=(job.params.get("filters") or {}).get("StudyInstanceUID", ""))
        return render_to_string("dimse/qr_series.html", context, request=request)
    context["studies"], context["count"] = study_rows(job)
    return render_to_string("dimse/qr_studies.html", context, request=request)


def _query_job_or_404(request, job_id: int):
    job = selectors.qr_job_get(job_id=job_id, user=request.user, kind="query")
    if job is None:
        raise Http404("No such query")
    return job


def _retrieval_json(job, archived: dict[str, int]) -> dict:
    filters = job.params.get("filters") or {}
    study_uid = str(filters.get("StudyInstanceUID", ""))
    series_uid = str(filters.get("SeriesInstanceUID", ""))
    url = ""
    if job.state == JobState.SUCCESS and study_uid in archived:
        url = reverse("viewer", args=[study_uid]) + (f"?{urlencode({'series': series_uid})}" if series_uid else "")
    return {**job_json(job), "study_uid": study_uid, "series_uid": series_uid,
            "method": job.params.get("method", "move"), "archive_url": url,
            "archived": archived.get(study_uid)}


def retrievals_json(jobs: list) -> list[dict]:
    study_uids = [str((j.params.get("filters") or {}).get("StudyInstanceUID", "")) for j in jobs]
    archived = selectors.archived_study_counts([uid for uid in study_uids if uid_is_valid(uid)])
    return [_retrieval_json(job, archived) for job in jobs]


def _safe_next(request, default: str) -> str:
    target = request.POST.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return default


def _wants_json(request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


# --- Pages ---------------------------------------------------------------------------------
class QueryRetrievePageView(PageMixin, TemplateView):
    """The page: query form, the results of ``?job=<query job>``, the user's recent retrievals."""

    template_name = "dimse/qr_page.html"
    nav = "qr"

    def get_context_data(self, **kwargs):
        from dimse.scu import local_storage_aet

        context = super().get_context_data(**kwargs)
        request = self.request
        form = kwargs.get("form")
        if form is None:
            shown = {k: v for k, v in request.GET.items() if k in StudyQueryForm.base_fields}
            form = StudyQueryForm(shown) if shown else StudyQueryForm()
            if form.is_bound:
                form.is_valid()  # errors shown next to the fields; nothing runs on GET
        job_id = request.GET.get("job", "")
        job = (selectors.qr_job_get(job_id=int(job_id), user=request.user, kind="query")
               if job_id.isdigit() else None)
        retrievals = selectors.qr_job_list(user=request.user, kind="retrieve")
        context.update(
            form=form, nodes=list(selectors.query_node_list()), query_job=job,
            query_finished=bool(job) and job.state in FINISHED,
            query_error=(job.errors[-1] if job and job.errors else ""),
            retrievals=retrievals_json(retrievals),
            storage_aet=local_storage_aet(),
            qr_strings={
                "noWorker": _(
                    "No job worker has picked this up yet: is 'manage.py qcluster' running?"),
                "queryFailed": _("The query failed:"), "cancelled": _("The query was cancelled."),
                "errorHint": _("Check that the remote node is running and reachable at this host and port, "
                               "and that it accepts our AE title."), "loading": _("Loading…"), "failed": _("Failed"),
                "inArchive": _("In archive"), "open": _("Open"),
                "selected": _("%(n)s selected"),
            },
        )
        if job and job.state == JobState.SUCCESS:
            context["studies"], context["count"] = study_rows(job)
            context["job"], context["node"] = job, job.params.get("node", "")
        return context


class StudyQueryView(PageMixin, PermissionRequiredMixin, View):
    """POST the query form -> a study-level ``query`` job, then back to the page showing it."""

    permission_required = "pacs.add_job"  # jobs, as POST /api/jobs/

    def post(self, request):
        from pacs.services.jobs import job_create

        form = StudyQueryForm(request.POST)
        if not form.is_valid():
            page = QueryRetrievePageView()
            page.setup(request)
            return page.render_to_response(page.get_context_data(form=form), status=400)
        node = form.cleaned_data["node"]
        job = job_create(
            kind="query",
            params={"node": node.ae_title, "level": "STUDY", "root": "STUDY", "filters": form.filters(),
                    "keys": STUDY_KEYS},
            description=_("Find studies on %(node)s") % {"node": node.ae_title},
            user=request.user,
            max_attempts=1,  # an interactive query reports its failure at once, it does not back off
        )
        logger.info("qr page query job=%s node=%s user=%s", job.pk, node.ae_title, request.user.get_username())
        return redirect(f"{reverse('qr-page')}?{urlencode({**form.querystring_data(), 'job': job.pk})}")


class SeriesQueryView(PageMixin, PermissionRequiredMixin, View):
    """POST ``query`` (a study-level query job) + ``uid`` (a study it found) -> a series-level query job."""

    permission_required = "pacs.add_job"  # jobs, as POST /api/jobs/

    def post(self, request):
        from pacs.services.jobs import job_create

        parent_id = request.POST.get("query", "")
        uid = request.POST.get("uid", "").strip()
        if not parent_id.isdigit() or not uid_is_valid(uid):
            return JsonResponse({"error": _("Not a valid UID.")}, status=400)
        parent = _query_job_or_404(request, int(parent_id))
        node = str(parent.params.get("node", ""))
        job = job_create(
            kind="query",
            params={"node": node, "level": "SERIES", "root": "STUDY", "filters": {"StudyInstanceUID": uid},
                    "keys": SERIES_KEYS},
            description=_("Find the series of a study on %(node)s") % {"node": node},
            user=request.user, max_attempts=1,
        )
        return JsonResponse({"job": job.pk, "url": reverse("qr-query-data", args=[job.pk])}, status=201)


class QueryDataView(PageMixin, View):
    """JSON state of one of the user's query jobs; ``html`` is the result table once it succeeded."""

    def get(self, request, job_id: int):
        job = _query_job_or_404(request, job_id)
        data = {**job_json(job), "node": job.params.get("node", ""), "error": job.errors[-1] if job.errors else ""}
        if job.state == JobState.SUCCESS:
            data["html"] = _results_html(request, job)
        return JsonResponse(data)


class RetrieveView(PageMixin, PermissionRequiredMixin, View):
    """POST studies or series of a query job -> one ``retrieve`` job each (C-MOVE to us, or C-GET).

    The node, level and study come from the user's own query job, never from
    the form; each UID must be one of that job's matches.
    """

    permission_required = "pacs.add_job"  # jobs, as POST /api/jobs/

    def post(self, request):
        from pacs.services.jobs import job_create

        back = _safe_next(request, reverse("qr-page"))
        form = RetrieveForm(request.POST)
        error = ""
        if not form.is_valid():
            error = " ".join(str(e) for errors in form.errors.values() for e in errors)
        else:
            query = _query_job_or_404(request, form.cleaned_data["query"])
            level = str(query.params.get("level", "STUDY")).upper()
            node = str(query.params.get("node", ""))
            key = "SeriesInstanceUID" if level == "SERIES" else "StudyInstanceUID"
            found = {_text(m, key): m for m in (query.result or {}).get("matches") or []}
            missing = [uid for uid in form.cleaned_data["uids"] if uid not in found]
            if query.state != JobState.SUCCESS or missing:
                error = _("These studies or series are not in the results of that query.")
        if error:
            if _wants_json(request):
                return JsonResponse({"error": error}, status=400)
            messages.error(request, error)
            return redirect(back)
        method = form.cleaned_data["method"]
        method_label = "C-MOVE" if method == "move" else "C-GET"
        jobs = []
        for uid in form.cleaned_data["uids"]:
            match = found[uid]
            if level == "SERIES":
                study_uid = str((query.params.get("filters") or {}).get("StudyInstanceUID", ""))
                filters = {"StudyInstanceUID": study_uid, "SeriesInstanceUID": uid}
                what = _("series %(label)s") % {"label": _series_label(match)}
            else:
                filters = {"StudyInstanceUID": uid}
                what = _study_label(match)
            jobs.append(job_create(
                kind="retrieve",
                params={"node": node, "level": level, "root": "STUDY", "filters": filters, "method": method},
                description=_("Retrieve %(what)s from %(node)s (%(method)s)")
                % {"what": what, "node": node, "method": method_label},
                user=request.user,
            ))
        logger.info("qr page retrieve jobs=%s node=%s level=%s method=%s", [j.pk for j in jobs], node, level,
                    method)
        if _wants_json(request):
            rows = retrievals_json(jobs)
            html = render_to_string("dimse/_retrieval_rows.html", {"retrievals": rows}, request=request)
            return JsonResponse({"jobs": rows, "html": html}, status=201)
        messages.success(request, _("%(n)d retrieve job(s) queued.") % {"n": len(jobs)})
        return redirect(back)


class RetrievalDataView(PageMixin, View):
    """JSON progress of the user's retrieve jobs named in ``?id=1&id=2``, with the archive link when done."""

    def get(self, request):
        ids = [int(v) for v in request.GET.getlist("id") if v.isdigit()][:100]
        jobs = selectors.qr_job_list(user=request.user, kind="retrieve", ids=ids, limit=100)
        return JsonResponse({"jobs": retrievals_json(jobs)})

"""Operations pages: send/upload, jobs, logs, status, settings."""

from __future__ import annotations

import logging
import zipfile

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import redirect
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views import View
from django.views.generic import TemplateView

from pacs.choices import JobState
from pacs.exceptions import OutOfResources, PacsError
from pacs.services.config import archive_config_get
from pacs.services.ingest import IngestOrigin, instance_ingest
from pacs.services.logs import log_archives_delete
from pacs.storage import free_space_check, write_failure_status
from pacs.views import reads
from pacs.views.forms import LogFilterForm
from pacs.views.mixins import PageMixin
from pacs.views.settings_page import SettingsView  # noqa: F401  (the Settings page, routed from here)

logger = logging.getLogger("pacs.views")


class PlaceholderView(PageMixin, TemplateView):
    """Pages whose app is not wired yet say so plainly."""

    template_name = "pacs/placeholder.html"


# --- Send / upload -------------------------------------------------------------------
class SendPageView(PageMixin, TemplateView):
    """Upload files, folders or zips into the archive; recent send jobs with progress."""

    template_name = "pacs/send.html"
    nav = "send"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["jobs"] = list(reads.job_search(kind="send")[:20])
        return context


class UploadView(PageMixin, View):
    """POST one file (DICOM Part 10 or a zip of them) -> JSON with one result per instance.

    Every instance goes through ``instance_ingest`` (origin ``upload``).  Zip
    member names are never used as paths: members are read into memory and
    handed over as bytes.
    """

    MAX_ZIP_MEMBER = 2 * 1024**3

    def post(self, request):
        try:  # before the body is received: Django writes a large upload to a temp file first
            free_space_check(archive_config_get().min_free_mb)
        except OutOfResources as exc:
            return JsonResponse({"error": exc.message}, status=507)
        try:
            upload = request.FILES.get("file")
        except OSError as exc:  # the upload's temp file could not be written
            logger.warning("upload not received peer=%s reason=%s", request.META.get("REMOTE_ADDR", ""), exc)
            for handler in request.upload_handlers:  # the partial temp file goes now, not when the request is freed
                partial = getattr(handler, "file", None)
                if partial is not None:
                    partial.close()
            full = write_failure_status(exc) == 0xA700
            return JsonResponse({"error": _("Cannot receive the upload: %s") % (exc.strerror or exc)},
                                status=507 if full else 500)
        if upload is None:
            return JsonResponse({"error": _("No file in the request (field 'file').")}, status=400)
        origin = IngestOrigin(source="upload", calling_aet="WEB", peer_address=request.META.get("REMOTE_ADDR", ""))
        results = []
        head = upload.read(4)
        upload.seek(0)
        if head == b"PK\x03\x04":
            try:
                archive = zipfile.ZipFile(upload)
            except zipfile.BadZipFile as exc:
                return JsonResponse({"error": _("Not a valid zip file: %s") % exc}, status=400)
            with archive:
                for member in archive.infolist():
                    if member.is_dir() or member.file_size > self.MAX_ZIP_MEMBER:
                        continue
                    results.append(self._ingest(archive.read(member), member.filename, origin))
        else:
            source = upload.temporary_file_path() if hasattr(upload, "temporary_file_path") else upload.read()
            results.append(self._ingest(source, upload.name, origin))
        stored = sum(1 for r in results if r["ok"])
        status = 200 if stored or not results else 400
        return JsonResponse({"name": upload.name, "stored": stored, "failed": len(results) - stored,
                             "results": results}, status=status)

    @staticmethod
    def _ingest(source, name: str, origin: IngestOrigin) -> dict:
        try:
            result = instance_ingest(source=source, origin=origin)
        except PacsError as exc:
            return {"name": name, "ok": False, "error": exc.message, "status": f"0x{exc.dicom_status:04X}"}
        return {"name": name, "ok": True, "status": result.status, "sop_instance_uid": result.sop_instance_uid,
                "study_instance_uid": result.study_instance_uid}


# --- Jobs -----------------------------------------------------------------------------
class JobListView(PageMixin, TemplateView):
    template_name = "pacs/job_list.html"
    nav = "jobs"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        state = self.request.GET.get("state", "")
        kind = self.request.GET.get("kind", "")
        state = state if state in JobState.values else ""
        page = Paginator(reads.job_search(state=state, kind=kind), 50).get_page(self.request.GET.get("page"))
        context.update(page=page, jobs=page.object_list, state=state, kind=kind, states=JobState.choices,
                       kinds=reads.job_kinds_present())
        return context


def job_json(job) -> dict:
    return {
        "id": job.pk, "kind": job.kind, "state": job.state, "state_label": job.get_state_display(),
        "done": job.progress_done, "failed": job.progress_failed, "total": job.progress_total,
        "errors": job.errors[-5:], "description": job.description,
        "finished": job.state in (JobState.SUCCESS, JobState.FAILURE, JobState.CANCELLED),
    }


class JobDataView(PageMixin, View):
    """JSON progress of the jobs named in ``?id=1&id=2`` (live progress bars)."""

    def get(self, request):
        ids = [int(v) for v in request.GET.getlist("id") if v.isdigit()][:200]
        jobs = reads.job_search().filter(pk__in=ids)
        return JsonResponse({"jobs": [job_json(job) for job in jobs]})


class JobRetryView(PageMixin, View):
    def post(self, request, job_id: int):
        from pacs.services.jobs import job_retry

        try:
            job_retry(job_id=job_id)
            messages.success(request, _("Job %(id)s queued again.") % {"id": job_id})
        except ValueError as exc:
            messages.error(request, str(exc))
        except reads.Job.DoesNotExist as exc:
            raise Http404("No such job") from exc
        return redirect(_safe_next(request, reverse("job-list")))


class JobCancelView(PageMixin, View):
    def post(self, request, job_id: int):
        from pacs.services.jobs import job_cancel

        try:
            job_cancel(job_id=job_id)
        except reads.Job.DoesNotExist as exc:
            raise Http404("No such job") from exc
        messages.success(request, _("Job %(id)s cancelled.") % {"id": job_id})
        return redirect(_safe_next(request, reverse("job-list")))


def _safe_next(request, default: str) -> str:
    from django.utils.http import url_has_allowed_host_and_scheme

    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return default


# --- Logs -------------------------------------------------------------------------------
class LogListView(PageMixin, TemplateView):
    template_name = "pacs/log_list.html"
    nav = "logs"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        services = reads.log_services()
        form = LogFilterForm(self.request.GET or {"service": services[0]}, services=services)
        if not form.is_valid():
            form = LogFilterForm({"service": services[0]}, services=services)
            form.is_valid()
        data = form.cleaned_data
        service = data.get("service") or services[0]
        result = reads.log_lines(service, level=data.get("level", ""), search=data.get("q", ""),
                                 limit=data.get("lines") or 500)
        context.update(
            form=form, service=service, services=services, level=data.get("level", ""), q=data.get("q", ""),
            lines=result["lines"], offset=result["offset"], size=result["size"],
            archives=reads.log_archives(service),
            tail_config={"url": reverse("log-tail", args=[service]), "offset": result["offset"],
                         "level": data.get("level", ""), "q": data.get("q", "")},
        )
        return context


class LogTailView(PageMixin, View):
    """JSON: lines appended since ``offset`` (live tail)."""

    def get(self, request, service: str):
        if service not in reads.log_services():
            raise Http404("Unknown log")
        try:
            offset = int(request.GET.get("offset", "0"))
        except ValueError:
            offset = 0
        result = reads.log_lines(service, level=request.GET.get("level", ""), search=request.GET.get("q", ""),
                                 limit=2000, offset=max(0, offset))
        return JsonResponse(result)


class LogDownloadView(PageMixin, View):
    """Download the current log of a service or one rotated file (``?file=N``)."""

    def get(self, request, service: str):
        if service not in reads.log_services():
            raise Http404("Unknown log")
        path = reads.log_path(service)
        index = request.GET.get("file", "")
        if index:
            if not index.isdigit():
                raise Http404("Unknown file")
            path = path.with_name(f"{path.name}.{int(index)}")
        if not path.is_file():
            raise Http404("No such log file")
        return FileResponse(path.open("rb"), as_attachment=True, filename=path.name, content_type="text/plain")


class LogDeleteOldView(PageMixin, View):
    def post(self, request):
        try:
            days = max(0, int(request.POST.get("days", "7")))
        except ValueError:
            days = 7
        removed = log_archives_delete(older_than_days=days)
        messages.success(request, _("%(n)d old log file(s) deleted.") % {"n": len(removed)})
        return redirect(reverse("log-list"))


# --- Status -------------------------------------------------------------------------------
def status_data() -> dict:
    counts = reads.archive_counts()
    disk = reads.disk_usage()
    return {
        "listeners": reads.listener_states(),
        "counts": counts,
        "disk": disk,
        "disk_text": {"used": filesizeformat(disk["used"]), "free": filesizeformat(disk["free"]),
                      "total": filesizeformat(disk["total"]), "archive": filesizeformat(counts["bytes"])},
        "ingest_per_minute": reads.ingest_rate(minutes=60),
        "system": reads.system_load(),
        "associations": [
            {"started_at": a.started_at.isoformat(), "service": a.service, "calling_aet": a.calling_aet,
             "called_aet": a.called_aet, "peer": a.peer_address, "status": a.status,
             "instances": a.instances_received, "failures": a.failures, "reason": a.reason}
            for a in reads.association_recent()
        ],
        "errors": [
            {"started_at": a.started_at.isoformat(), "calling_aet": a.calling_aet, "status": a.status,
             "reason": a.reason, "failures": a.failures}
            for a in reads.association_errors()
        ],
    }


class StatusView(PageMixin, TemplateView):
    template_name = "pacs/status.html"
    nav = "status"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["status"] = status_data()
        return context


class StatusDataView(PageMixin, View):
    def get(self, request):
        return JsonResponse(status_data())


class ListenerCommandView(PageMixin, View):
    """POST start/stop/restart for one listener (or all); waits for runscp to apply it."""

    WAIT_SECONDS = 8.0

    def post(self, request):
        from dimse.services import listener_command_issue, listener_command_wait

        action = request.POST.get("action", "")
        service = request.POST.get("service", "")
        try:
            command = listener_command_issue(action=action, service=service, user=request.user)
        except ValueError:
            messages.error(request, _("Unknown action or listener."))
            return redirect(reverse("status"))
        command = listener_command_wait(command, timeout=self.WAIT_SECONDS)
        if command.processed_at:
            failed = {name: state.get("error") for name, state in (command.result or {}).items() if state.get("error")}
            if failed:
                messages.error(request, "; ".join(f"{k}: {v}" for k, v in failed.items()))
            else:
                messages.success(request, _("Listeners: %(action)s done.") % {"action": command.get_action_display()})
        else:
            messages.warning(request, _("No runscp process answered; is 'manage.py runscp' running?"))
        return redirect(reverse("status"))

"""Print job web pages: list with filters and film thumbnails, details, film preview, downloads, forward, delete.

Reads through :mod:`printing.selectors`; writes through
:mod:`printing.services.print_jobs` (``print_job_forward``, ``print_job_delete``:
the functions the REST API and the admin call); files through
:mod:`printing.services.exports`.  Every view needs a login: film previews are
patient images.
"""

from __future__ import annotations

import logging
import tempfile

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views import View
from django.views.generic import TemplateView
from pydicom.datadict import keyword_for_tag

from pacs.storage import absolute_path as archive_path
from pacs.views.mixins import PageMixin
from printing import selectors
from printing.exceptions import ForwardError, PrintError
from printing.forms import PAGE_SIZES, ForwardForm, PrintJobFilterForm
from printing.models import Film, PrintJob
from printing.services import files
from printing.services.exports import THUMBNAIL_SIZES, film_image_boxes_describe, film_thumbnail, print_job_zip
from printing.services.print_jobs import print_job_delete, print_job_forward
from printing.services.printer import PRINTER_NAME
from printing.services.sessions import film_box_effective

logger = logging.getLogger(__name__)

_MAX_VALUE_CHARS = 200
# Labels of other apps' choices shown here (they are not marked for translation where defined).
JOB_STATE_LABELS = {
    "pending": gettext_lazy("Pending"),
    "running": gettext_lazy("Running"),
    "retrying": gettext_lazy("Waiting to retry"),
    "success": gettext_lazy("Success"),
    "failure": gettext_lazy("Failure"),
    "cancelled": gettext_lazy("Cancelled"),
}
ASSOCIATION_LABELS = {
    "established": gettext_lazy("Established"),
    "released": gettext_lazy("Released"),
    "aborted": gettext_lazy("Aborted"),
    "rejected": gettext_lazy("Rejected"),
}
_BINARY_VRS = {"OB", "OW", "OF", "OD", "OL", "OV", "UN"}


def attribute_rows(data: dict | None, depth: int = 0) -> list[dict]:
    """DICOM JSON (PS3.18 F.2) as display rows: tag, keyword, VR, value; sequences nested by *depth*."""
    rows: list[dict] = []
    for tag in sorted(data or {}):
        element = data[tag] or {}
        vr = element.get("vr", "")
        try:
            keyword = keyword_for_tag(int(tag, 16)) or ""
        except ValueError:
            keyword = ""
        row = {"tag": f"({tag[:4]},{tag[4:]})", "keyword": keyword, "vr": vr, "value": "", "depth": depth,
               "indent": f"{0.6 + depth * 1.2:.1f}"}
        rows.append(row)
        values = element.get("Value") or []
        if vr == "SQ":
            row["value"] = _("%(n)d item(s)") % {"n": len(values)}
            for item in values:
                rows.extend(attribute_rows(item, depth + 1))
        elif vr in _BINARY_VRS or "InlineBinary" in element or "BulkDataURI" in element:
            row["value"] = _("(binary)")
        elif vr == "PN":
            row["value"] = "\\".join("=".join(v for v in (p.get("Alphabetic", ""), p.get("Ideographic", ""),
                                                          p.get("Phonetic", "")) if v) for p in values)
        else:
            text = "\\".join("" if v is None else str(v) for v in values)
            row["value"] = text if len(text) <= _MAX_VALUE_CHARS else text[:_MAX_VALUE_CHARS] + "…"
    return rows


def _job_or_404(job_id: int) -> PrintJob:
    try:
        return selectors.print_job_get(job_id=job_id)
    except PrintJob.DoesNotExist as exc:
        raise Http404("No such print job") from exc


def _film_or_404(job_id: int, film_number: int) -> Film:
    film = selectors.film_get(print_job_id=job_id, film_number=film_number)
    if film is None:
        raise Http404("No such film")
    return film


class PrintJobListView(PageMixin, TemplateView):
    """Print jobs received by the print listener, newest first, with the first film as a thumbnail."""

    template_name = "printing/printjob_list.html"
    nav = "print"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        form = PrintJobFilterForm(self.request.GET or None)
        if not (form.is_bound and form.is_valid()):
            form = PrintJobFilterForm({})
            form.is_valid()
        page = Paginator(selectors.print_job_search(**form.search()), form.cleaned_data["per_page"]).get_page(
            self.request.GET.get("page"))
        context.update(form=form, filters=form.cleaned_data, page=page, jobs=page.object_list,
                       statuses=form.fields["status"].choices[1:], page_sizes=PAGE_SIZES)
        return context


class PrintJobDetailView(PageMixin, TemplateView):
    """Every attribute of a print job: session, association, printer settings, films and their image boxes."""

    template_name = "printing/printjob_detail.html"
    nav = "print"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        job = _job_or_404(kwargs["job_id"])
        films = list(job.films.all())
        film_rows = []
        for film in films:
            try:
                effective = film_box_effective(film.film_box)
            except PrintError:
                effective = {}
            film_rows.append({
                "film": film,
                "effective": effective,
                "image_boxes": [{**box, "attribute_rows": attribute_rows(box["attributes"])}
                                for box in film_image_boxes_describe(film=film)],
                "film_box_rows": attribute_rows(film.film_box),
                "lut_rows": attribute_rows(film.presentation_lut),
            })
        printers = selectors.printer_node_list()
        association = selectors.print_job_association(job)
        context.update(
            job=job,
            films=film_rows,
            session_rows=attribute_rows(job.attributes),
            association=association,
            association_label=ASSOCIATION_LABELS.get(association.status, association.status) if association else "",
            forwards=[{"job": forward, "state_label": JOB_STATE_LABELS.get(forward.state, forward.state)}
                      for forward in selectors.print_job_forwards(job_id=job.pk)[:20]],
            printers=printers,
            forward_form=kwargs.get("forward_form")
            or ForwardForm(printers=printers, film_numbers=[film.film_number for film in films]),
            printer={"name": PRINTER_NAME, "dpi": settings.PACS_PRINT_DPI},
        )
        return context


class FilmPreviewView(PageMixin, View):
    """The composed film as PNG: full size, ``?size=160|320|640`` thumbnails, ``?download=1`` as a file."""

    def get(self, request, job_id: int, film_number: int):
        film = _film_or_404(job_id, film_number)
        name = f"print-{job_id}-film-{film_number}.png"
        size = request.GET.get("size", "")
        try:
            if size:
                if not size.isdigit() or int(size) not in THUMBNAIL_SIZES:
                    raise Http404("No such thumbnail size")
                response = HttpResponse(film_thumbnail(film=film, size=int(size)), content_type="image/png")
            else:
                response = FileResponse(open(files.absolute_path(film.preview_file), "rb"),  # noqa: SIM115
                                        content_type="image/png", as_attachment=request.GET.get("download") == "1",
                                        filename=name)
        except (OSError, ValueError) as exc:
            raise Http404("The film preview is missing") from exc
        # Patient images: the browser may keep them for the session only.
        response["Cache-Control"] = "private, max-age=300"
        return response


class FilmDicomView(PageMixin, View):
    """The composed film as archived: Secondary Capture, DICOM Part 10."""

    def get(self, request, job_id: int, film_number: int):
        film = _film_or_404(job_id, film_number)
        if film.instance is None:
            raise Http404("The film's instance was deleted from the archive")
        try:
            handle = open(archive_path(film.instance.file_path), "rb")  # noqa: SIM115 - FileResponse closes it
        except (OSError, ValueError) as exc:
            raise Http404("The film's file is missing from the archive") from exc
        return FileResponse(handle, content_type="application/dicom", as_attachment=True,
                            filename=f"print-{job_id}-film-{film_number}.dcm")


class PrintJobDownloadView(PageMixin, View):
    """The print job as a zip: film PNGs, archived DICOM films and ``print-job.json``."""

    def get(self, request, job_id: int):
        job = _job_or_404(job_id)
        spool = tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024, dir=settings.PACS_TEMP_DIR)  # noqa: SIM115
        missing = print_job_zip(job=job, films=list(job.films.all()), target=spool)
        if missing:
            logger.warning("print job zip incomplete print_job=%s missing=%s", job_id, ",".join(missing))
        spool.seek(0)
        return FileResponse(spool, content_type="application/zip", as_attachment=True,
                            filename=f"print-job-{job_id}.zip")


class PrintJobForwardView(PageMixin, PermissionRequiredMixin, View):
    """POST printer (+ films): queue a ``print-forward`` job through ``print_job_forward``."""

    permission_required = "printing.change_printjob"

    def post(self, request, job_id: int):
        job = _job_or_404(job_id)
        numbers = [film.film_number for film in job.films.all()]
        form = ForwardForm(request.POST, printers=selectors.printer_node_list(), film_numbers=numbers)
        if form.is_valid():
            chosen = set(form.cleaned_data["films"])
            film_ids = [film.pk for film in job.films.all() if film.film_number in chosen] or None
            try:
                forward = print_job_forward(print_job_id=job.pk, node_id=form.cleaned_data["node"],
                                            film_ids=film_ids, user=request.user)
            except ForwardError as exc:
                form.add_error("node", exc.message)
            else:
                logger.info("print job forward queued via web user=%s print_job=%s job=%s",
                            request.user.get_username(), job.pk, forward.pk)
                messages.success(request, _("Forward job %(id)s queued.") % {"id": forward.pk})
                return redirect(reverse("print-detail", args=[job.pk]) + "#forwards")
        messages.error(request, _("Please correct the errors below."))
        view = PrintJobDetailView()
        view.setup(request, job_id=job_id)
        context = view.get_context_data(job_id=job_id, forward_form=form)
        return view.render_to_response(context, status=400)


class PrintJobDeleteView(PageMixin, PermissionRequiredMixin, View):
    """POST (after a confirmation): delete the job, its previews and received pixels (``print_job_delete``)."""

    permission_required = "printing.delete_printjob"

    def post(self, request, job_id: int):
        _job_or_404(job_id)
        print_job_delete(job_id=job_id)
        logger.info("print job deleted via web user=%s print_job=%s", request.user.get_username(), job_id)
        messages.success(request, _("Print job %(id)s deleted.") % {"id": job_id})
        return redirect(reverse("print-list"))

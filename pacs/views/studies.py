"""Study browser pages: list with filters, series expansion, actions, viewers."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.core.paginator import Paginator
from django.db.models import Exists, OuterRef, QuerySet
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views import View
from django.views.generic import TemplateView

from pacs import matching
from pacs.models import Series, Study
from pacs.services.config import archive_config_get
from pacs.storage import uid_is_valid
from pacs.views.forms import MODALITIES, PAGE_SIZES, StudyFilterForm
from pacs.views.mixins import PageMixin

logger = logging.getLogger(__name__)


# --- Reads kept here until pacs.selectors offers them (see module docstring) ---
_TEXT_FILTERS = {
    # study-list field -> DICOM keyword matched by pacs.matching (PS3.4 C.2.2.2)
    "patient_id": "PatientID",
    "patient_name": "PatientName",
    "accession": "AccessionNumber",
    "description": "StudyDescription",
}


def _contains(value: str) -> str:
    """A box value as a DICOM match value: typed wildcards are kept, plain text matches anywhere.

    ``bet*`` is a C-FIND wildcard match; ``ACC-1`` becomes ``*ACC-1*`` because a
    person typing part of a name or number expects to find it wherever it is.
    """
    value = value.strip()
    return value if not value or "*" in value or "?" in value else f"*{value}*"


def _date_range(date_from, date_to) -> str:
    """StudyDate range matching (PS3.4 C.2.2.2.5.1): ``a-b``, ``a-`` or ``-b``."""
    if not date_from and not date_to:
        return ""
    return "-".join(d.strftime("%Y%m%d") if d else "" for d in (date_from, date_to))


def study_search(filters: dict) -> QuerySet[Study]:
    """Studies matching the study-list filters, with the C-FIND/QIDO-RS matching of :mod:`pacs.matching`.

    Person names match every component group and ignore case
    (``PACS_PN_CASE_INSENSITIVE``); other text is case-sensitive as in C-FIND.
    The patient is joined (no N+1).

    Raises
    ------
    pacs.matching.MatchingError
        A value the matcher cannot understand.
    """
    keys = {keyword: _contains(filters.get(name) or "") for name, keyword in _TEXT_FILTERS.items()}
    keys["StudyDate"] = _date_range(filters.get("date_from"), filters.get("date_to"))
    keys["ModalitiesInStudy"] = (filters.get("modality") or "").strip().upper()
    rows = matching.level_queryset("STUDY", {k: v for k, v in keys.items() if v})
    calling_aet = (filters.get("calling_aet") or "").strip()
    if calling_aet:
        sent_by = matching.value_q("source_aet", "AE", calling_aet, keyword="SourceApplicationEntityTitle")
        if sent_by is not None:
            rows = rows.filter(Exists(Series.objects.filter(sent_by, study=OuterRef("pk"))))
    return rows


def _study_or_404(study_uid: str) -> Study:
    if not uid_is_valid(study_uid):
        raise Http404("Invalid Study Instance UID")
    study = Study.objects.select_related("patient").filter(study_instance_uid=study_uid).first()
    if study is None:
        raise Http404("Study not found")
    return study


def _store_nodes() -> list:
    from dimse.models import RemoteNode

    return list(RemoteNode.objects.filter(enabled=True, is_store_destination=True).order_by("ae_title"))


# --- Pages ---------------------------------------------------------------------
class StudyListView(PageMixin, TemplateView):
    """Study list: filters, sorting, paging; rows expand to their series."""

    template_name = "pacs/study_list.html"
    nav = "studies"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        form = StudyFilterForm(self.request.GET or None)
        if form.is_bound and form.is_valid():
            filters = form.cleaned_data
        else:
            form = StudyFilterForm({})
            form.is_valid()
            filters = form.cleaned_data
        try:
            rows = study_search(filters).order_by(*form.ordering())
        except matching.MatchingError as exc:
            messages.error(self.request, exc.message)
            rows = Study.objects.none()
        paginator = Paginator(rows, filters["per_page"])
        page = paginator.get_page(self.request.GET.get("page"))
        context.update(
            form=form,
            filters=filters,
            columns=_columns(filters["sort"]),
            page=page,
            studies=page.object_list,
            sort=filters["sort"],
            modalities=MODALITIES,
            page_sizes=PAGE_SIZES,
            nodes=_store_nodes(),
            external_viewer=bool(archive_config_get().external_viewer_url),
            ohif_installed=_ohif_installed(),
        )
        return context


class StudySeriesView(PageMixin, TemplateView):
    """HTML fragment: the series of one study with thumbnails (row expansion)."""

    template_name = "pacs/study_series.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        study = _study_or_404(kwargs["study_uid"])
        context["study"] = study
        context["series_list"] = list(Series.objects.filter(study=study).order_by("series_number", "id"))
        return context


class ViewerView(PageMixin, TemplateView):
    """Built-in viewer: renders through WADO-RS (PS3.18 10.4) in the browser."""

    template_name = "pacs/viewer.html"
    nav = "studies"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        study = _study_or_404(kwargs["study_uid"])
        series_list = list(Series.objects.filter(study=study).order_by("series_number", "id"))
        context.update(
            study=study,
            series_list=series_list,
            viewer_config={
                "studyInstanceUID": study.study_instance_uid,
                "dicomwebRoot": reverse("study-list").rstrip("/") + "/dicomweb",
                "initialSeries": self.request.GET.get("series", ""),
                "series": [
                    {
                        "seriesInstanceUID": s.series_instance_uid,
                        "modality": s.modality,
                        "seriesNumber": s.series_number,
                        "seriesDescription": s.series_description,
                        "count": s.number_of_series_related_instances,
                    }
                    for s in series_list
                ],
            },
        )
        return context


WEASIS_TOKEN_SALT = "pacs.weasis-manifest"
WEASIS_TOKEN_SECONDS = 600


class WeasisManifestView(View):
    """Weasis manifest (``manifest.xml`` schema 2.5) listing the study for our WADO-URI.

    Weasis fetches it outside the browser, without our session: the launch view
    signs a short-lived token for (user, study) instead.  The manifest tells
    Weasis to send that user's API token with its WADO-URI requests.
    """

    def get(self, request, study_uid: str):
        from django.contrib.auth import get_user_model
        from django.core import signing
        from django.template.loader import render_to_string

        try:
            payload = signing.loads(request.GET.get("token", ""), salt=WEASIS_TOKEN_SALT, max_age=WEASIS_TOKEN_SECONDS)
        except signing.BadSignature:
            return HttpResponse(_("Invalid or expired manifest token."), status=403, content_type="text/plain")
        if payload.get("study") != study_uid:
            return HttpResponse(_("Invalid or expired manifest token."), status=403, content_type="text/plain")
        user = get_user_model().objects.filter(pk=payload.get("user"), is_active=True).first()
        if user is None:
            return HttpResponse(_("Invalid or expired manifest token."), status=403, content_type="text/plain")
        study = _study_or_404(study_uid)
        series_list = Series.objects.filter(study=study).prefetch_related("instances").order_by("series_number", "id")
        body = render_to_string(
            "pacs/weasis_manifest.xml",
            {
                "study": study,
                "series_list": series_list,
                "base": request.build_absolute_uri("/").rstrip("/"),
                "api_token": _api_token(user),
            },
        )
        return HttpResponse(body, content_type="application/xml; charset=utf-8")


def _api_token(user) -> str:
    """The user's REST API token (DRF authtoken), created on first use."""
    from rest_framework.authtoken.models import Token

    token, _created = Token.objects.get_or_create(user=user)
    return token.key


class WeasisLaunchView(PageMixin, View):
    """Redirect to ``weasis://`` with a signed manifest URL of the study (Weasis launcher protocol)."""

    def get(self, request, study_uid: str):
        from urllib.parse import quote

        from django.core import signing

        study = _study_or_404(study_uid)
        token = signing.dumps({"user": request.user.pk, "study": study.study_instance_uid}, salt=WEASIS_TOKEN_SALT)
        manifest = request.build_absolute_uri(
            reverse("weasis-manifest", args=[study.study_instance_uid]) + "?token=" + quote(token)
        )
        command = f'$dicom:get -w "{manifest}"'
        return _SchemeRedirect("weasis://" + quote(command, safe=""), scheme="weasis")


class ExternalViewerView(PageMixin, View):
    """Open the study in the external viewer whose URL template the Settings page holds."""

    def get(self, request, study_uid: str):
        from urllib.parse import urlsplit

        from pacs.services.config import external_viewer_url, public_base_url

        study = _study_or_404(study_uid)
        url = external_viewer_url(
            study_instance_uid=study.study_instance_uid, accession_number=study.accession_number,
            patient_id=study.patient.patient_id,
            base=public_base_url() or request.build_absolute_uri("/").rstrip("/"),
        )
        if not url:
            raise Http404("No external viewer configured")
        return _SchemeRedirect(url, scheme=urlsplit(url).scheme or "http")


_COLUMNS = [
    ("name", gettext_lazy("Patient name"), ""),
    ("pid", gettext_lazy("Patient ID"), ""),
    (None, gettext_lazy("Birth date"), ""),
    ("date", gettext_lazy("Study date"), ""),
    ("modality", gettext_lazy("Modality"), ""),
    ("description", gettext_lazy("Description"), ""),
    ("accession", gettext_lazy("Accession"), ""),
    (None, gettext_lazy("Series"), "num"),
    (None, gettext_lazy("Instances"), "num"),
    (None, gettext_lazy("Size"), "num"),
]
_DESCENDING_FIRST = {"date", "received"}


def _columns(sort: str) -> list[dict]:
    """Header cells: a click sorts by the column, a second click reverses it."""
    columns = []
    for key, label, css in _COLUMNS:
        direction = ""
        if key and sort.lstrip("-") == key:
            direction = "desc" if sort.startswith("-") else "asc"
            following = key if direction == "desc" else f"-{key}"
        elif key:
            following = f"-{key}" if key in _DESCENDING_FIRST else key
        else:
            following = ""
        columns.append({"key": key, "label": label, "css": css, "direction": direction, "next": following})
    return columns


class _SchemeRedirect(HttpResponseRedirect):
    """A redirect to a viewer's own URL scheme (``weasis://``, ``radiant://``), which Django refuses by default."""

    def __init__(self, url: str, *, scheme: str) -> None:
        self.allowed_schemes = [scheme]
        super().__init__(url)


def _ohif_installed() -> bool:
    return (settings.PACS_OHIF_DIR / "index.html").is_file()


class StudySendView(PageMixin, PermissionRequiredMixin, View):
    """POST selected studies + a remote node -> one ``send`` job (C-STORE SCU, issue 3's runner)."""

    permission_required = "pacs.add_job"  # as POST /api/jobs/

    def post(self, request):
        from dimse.models import RemoteNode
        from pacs.services.jobs import job_create

        uids = [uid for uid in request.POST.getlist("study") if uid_is_valid(uid)]
        node = RemoteNode.objects.filter(pk=request.POST.get("node") or 0, enabled=True).first()
        back = request.POST.get("next") or reverse("send-page")
        if not uids or node is None:
            messages.error(request, _("Choose at least one study and a destination node."))
            return redirect(request.META.get("HTTP_REFERER") or reverse("study-list"))
        try:
            job = job_create(
                kind="send",
                params={"node": node.ae_title, "study_instance_uids": uids},
                description=_("Send %(n)d study(ies) to %(aet)s") % {"n": len(uids), "aet": node.ae_title},
                user=request.user,
            )
        except ValueError as exc:
            messages.error(request, str(exc))
            return redirect(reverse("study-list"))
        messages.success(request, _("Send job %(id)s queued.") % {"id": job.pk})
        return redirect(back if back.startswith("/") and not back.startswith("//") else reverse("send-page"))


class InstanceTagsView(PageMixin, TemplateView):
    """HTML fragment: every attribute of one instance (sequences nested), for the viewer's tag browser."""

    template_name = "pacs/instance_tags.html"
    MAX_VALUE_CHARS = 256

    def get_context_data(self, **kwargs):
        from pydicom import dcmread

        from pacs import selectors, storage

        context = super().get_context_data(**kwargs)
        for key in ("study_uid", "series_uid", "sop_uid"):
            if not uid_is_valid(kwargs[key]):
                raise Http404("Invalid UID")
        try:
            instance = selectors.instance_get(sop_instance_uid=kwargs["sop_uid"], study_instance_uid=kwargs["study_uid"],
                                              series_instance_uid=kwargs["series_uid"])
        except selectors.NotFound as exc:
            raise Http404(str(exc)) from exc
        ds = dcmread(storage.absolute_path(instance.file_path), stop_before_pixels=True)
        rows: list[dict] = []
        self._walk(ds.file_meta, 0, rows)
        self._walk(ds, 0, rows)
        context["rows"] = rows
        return context

    def _walk(self, ds, depth: int, rows: list[dict]) -> None:
        for element in ds:
            row = {"depth": depth, "indent": depth * 1.2, "tag": f"({element.tag.group:04X},{element.tag.element:04X})",
                   "vr": element.VR, "name": element.name, "value": ""}
            rows.append(row)
            if element.VR == "SQ":
                row["value"] = _("%(n)d item(s)") % {"n": len(element.value)}
                for number, item in enumerate(element.value, start=1):
                    rows.append({"depth": depth + 1, "indent": (depth + 1) * 1.2, "item": number})
                    self._walk(item, depth + 1, rows)
            elif element.VR in ("OB", "OW", "OF", "OD", "OL", "OV", "UN") or element.tag == 0x7FE00010:
                row["value"] = _("(%(n)d bytes)") % {"n": len(element.value or b"")}
            else:
                text = str(element.value if element.VM != 0 else "")
                row["value"] = text if len(text) <= self.MAX_VALUE_CHARS else text[: self.MAX_VALUE_CHARS] + "…"



class StudyDownloadView(PageMixin, View):
    """The study as a zip (``?dicomdir=1``: a DICOMDIR file-set), streamed while it is built."""

    def get(self, request, study_uid: str):
        from django.http import StreamingHttpResponse

        from pacs import selectors
        from pacs.services.studies import archive_stream

        study = _study_or_404(study_uid)
        rows = selectors.download_rows(study_id=study.pk)
        if not rows:
            raise Http404("Nothing to download")
        response = StreamingHttpResponse(
            archive_stream(instance_rows=rows, dicomdir=request.GET.get("dicomdir") == "1"),
            content_type="application/zip",
        )
        response["Content-Disposition"] = f'attachment; filename="{study.study_instance_uid}.zip"'
        return response


class StudyEditView(PageMixin, PermissionRequiredMixin, TemplateView):
    """Edit patient/study demographics; written into the files and the index by the service."""

    template_name = "pacs/study_edit.html"
    permission_required = "pacs.change_study"
    nav = "studies"

    def get_context_data(self, **kwargs):
        from pacs.views.forms import StudyEditForm

        context = super().get_context_data(**kwargs)
        study = _study_or_404(kwargs["study_uid"])
        context["study"] = study
        context["form"] = kwargs.get("form") or StudyEditForm(initial=StudyEditForm.initial_for(study))
        return context

    def post(self, request, study_uid: str):
        from pacs.exceptions import PacsError
        from pacs.services.studies import study_demographics_update
        from pacs.views.forms import StudyEditForm

        study = _study_or_404(study_uid)
        form = StudyEditForm(request.POST, initial=StudyEditForm.initial_for(study))
        if form.is_valid():
            try:
                study_demographics_update(study_id=study.pk, changes=form.changes())
            except PacsError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, _("Study updated (index and files)."))
                return redirect(reverse("study-list") + "?accession=" + (form.cleaned_data["AccessionNumber"] or ""))
        return self.render_to_response(self.get_context_data(study_uid=study_uid, form=form), status=400)


class StudyDeleteView(PageMixin, PermissionRequiredMixin, View):
    """POST (after a confirmation dialog): delete the study, its rows and its files."""

    permission_required = "pacs.delete_study"

    def post(self, request, study_uid: str):
        from pacs.services.studies import study_delete

        study = _study_or_404(study_uid)
        result = study_delete(study_id=study.pk)
        logger.info("study deleted via web user=%s study_instance_uid=%s instances=%s",
                    request.user.get_username(), study.study_instance_uid, result.get("instances"))
        messages.success(request, _("Study deleted: %(n)s instance(s).") % {"n": result.get("instances", 0)})
        return redirect(reverse("study-list"))

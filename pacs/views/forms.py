"""Forms of the web pages: validation of filters and settings (no writes here)."""

from __future__ import annotations

import datetime

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

STUDY_SORTS = {
    # sort key -> ORM ordering (every one backed by an index or the PK)
    "date": ["study_date", "study_time", "id"],
    "name": ["patient__patient_name", "id"],
    "pid": ["patient__patient_id", "id"],
    "accession": ["accession_number", "id"],
    "modality": ["modalities_in_study", "id"],
    "description": ["study_description", "id"],
    "received": ["created_at", "id"],
}
# Quick date ranges: (first day, last day) as offsets in days from today (negative = past).
QUICK_RANGES = {
    "today": (0, 0),
    "yesterday": (-1, -1),
    "7days": (-6, 0),
    "30days": (-29, 0),
}
PAGE_SIZES = (25, 50, 100, 200)
MODALITIES = ("CR", "CT", "DX", "MG", "MR", "NM", "OT", "PT", "RF", "SC", "SR", "US", "XA")


def quick_range_apply(data: dict, ranges: dict[str, tuple[int, int]]) -> None:
    """Set ``date_from``/``date_to`` of cleaned filter *data* from its quick ``range`` (offsets in *ranges*)."""
    quick = data.get("range")
    if quick:
        today = timezone.localdate()
        first, last = ranges[quick]
        data["date_from"] = today + datetime.timedelta(days=first)
        data["date_to"] = today + datetime.timedelta(days=last)


class StudyFilterForm(forms.Form):
    """Filters of the study list (GET); unknown or bad values fall back to defaults."""

    patient_id = forms.CharField(required=False, max_length=64, label=_("Patient ID"))
    patient_name = forms.CharField(required=False, max_length=128, label=_("Patient name"))
    accession = forms.CharField(required=False, max_length=64, label=_("Accession"))
    date_from = forms.DateField(required=False, label=_("From"), widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label=_("To"), widget=forms.DateInput(attrs={"type": "date"}))
    modality = forms.CharField(required=False, max_length=16, label=_("Modality"))
    calling_aet = forms.CharField(required=False, max_length=16, label=_("Calling AE"))
    description = forms.CharField(required=False, max_length=64, label=_("Description"))
    range = forms.ChoiceField(required=False, choices=[(key, key) for key in QUICK_RANGES])
    sort = forms.CharField(required=False)
    per_page = forms.TypedChoiceField(required=False, coerce=int, choices=[(n, n) for n in PAGE_SIZES],
                                      empty_value=50)

    def clean(self):
        data = super().clean()
        quick_range_apply(data, QUICK_RANGES)
        sort = (data.get("sort") or "-date").strip()
        if sort.lstrip("-") not in STUDY_SORTS:
            sort = "-date"
        data["sort"] = sort
        data["per_page"] = data.get("per_page") or 50
        return data

    def ordering(self) -> list[str]:
        sort = self.cleaned_data["sort"]
        fields = STUDY_SORTS[sort.lstrip("-")]
        return [f"-{field}" for field in fields] if sort.startswith("-") else list(fields)


class ListenerForm(forms.Form):
    """One DIMSE listener's settings (``dimse.Listener``), prefixed by its service."""

    ae_title = forms.CharField(max_length=16, label=_("AE title"))
    port = forms.IntegerField(min_value=1, max_value=65535, label=_("Port"))
    enabled = forms.BooleanField(required=False, label=_("Enabled"))
    require_called_aet = forms.BooleanField(required=False, label=_("Check called AE title"))
    restrict_callers = forms.BooleanField(required=False, label=_("Only allowed callers"))
    max_associations = forms.IntegerField(min_value=1, max_value=1000, label=_("Max associations"))
    network_timeout = forms.IntegerField(min_value=1, max_value=86400, label=_("Idle timeout (s)"))

    def clean_ae_title(self) -> str:
        from dimse.models import ae_title_validate

        value = self.cleaned_data["ae_title"].strip()
        ae_title_validate(value)
        return value


class AllowedCallerForm(forms.Form):
    """One new entry of a calling-AE allow list (a row of the Settings page; blank rows are skipped).

    Validated by ``dimse.services.allowed_caller_validate``, the same rules as the
    control API: AE title 1-16 characters without backslash or control
    characters and not only spaces; host an IP address or host name.
    """

    ae_title = forms.CharField(required=False, max_length=64, label=_("Calling AE title"),
                               strip=False, widget=forms.TextInput(attrs={"maxlength": 16, "size": 14,
                                                                   "aria-label": _("Calling AE title")}))
    host = forms.CharField(required=False, max_length=255, label=_("Host or IP (optional)"),
                           widget=forms.TextInput(attrs={"size": 16, "aria-label": _("Host or IP (optional)")}))
    description = forms.CharField(required=False, max_length=255, label=_("Description"),
                                  widget=forms.TextInput(attrs={"size": 18, "aria-label": _("Description")}))

    def __init__(self, *args, service: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.service = service

    def is_blank(self) -> bool:
        data = getattr(self, "cleaned_data", {})
        return not any((data.get(name) or "").strip() for name in ("ae_title", "host", "description"))

    def clean(self):
        from django.core.exceptions import ValidationError as DjangoValidationError

        from dimse.services import allowed_caller_validate

        data = super().clean()
        if self.errors or self.is_blank():
            return data
        try:
            row = allowed_caller_validate(service=self.service, ae_title=data.get("ae_title") or "",
                                          host=data.get("host") or "", description=data.get("description") or "")
        except DjangoValidationError as exc:
            for field, messages in exc.message_dict.items():
                self.add_error(field if field in self.fields else None, messages)
            return data
        data.update(ae_title=row.ae_title, host=row.host, description=row.description)
        return data


AllowedCallerFormSet = forms.formset_factory(AllowedCallerForm, extra=1, max_num=50, absolute_max=50)


class WebSettingsForm(forms.Form):
    """Web settings read per request (``pacs.ArchiveConfig``): CORS origins, viewer link, public URL."""

    cors_allowed_origins = forms.CharField(
        required=False, label=_("CORS allowed origins"),
        widget=forms.Textarea(attrs={"rows": 3, "cols": 48, "placeholder": "http://viewer.example:3000"}),
        help_text=_("One origin per line: scheme://host[:port]. Browser apps there may call DICOMweb and the API."),
    )
    external_viewer_url = forms.CharField(
        required=False, max_length=1024, label=_("External viewer URL"),
        widget=forms.TextInput(attrs={"size": 60, "placeholder": "radiant://?n=pstv&v=0020000D&v={StudyInstanceUID}"}),
        help_text=_("Placeholders: {StudyInstanceUID} {AccessionNumber} {PatientID} {base}. Empty hides the link."),
    )
    public_url = forms.CharField(
        required=False, max_length=255, label=_("Public URL"),
        widget=forms.TextInput(attrs={"size": 40, "placeholder": "https://pacs.example.org"}),
        help_text=_("Base of RetrieveURL/BulkDataURI behind a proxy; empty = the address the client used."),
    )

    @staticmethod
    def initial_for(config) -> dict:
        return {"cors_allowed_origins": "\n".join(config.cors_allowed_origins),
                "external_viewer_url": config.external_viewer_url, "public_url": config.public_url}

    def _cleaned(self, name: str, clean):
        from django.core.exceptions import ValidationError as DjangoValidationError

        try:
            return clean(self.cleaned_data[name])
        except DjangoValidationError as exc:
            raise forms.ValidationError(exc.messages) from exc

    def clean_cors_allowed_origins(self) -> list[str]:
        from pacs.services.config import cors_origins_clean

        return self._cleaned("cors_allowed_origins", cors_origins_clean)

    def clean_external_viewer_url(self) -> str:
        from pacs.services.config import external_viewer_url_clean

        return self._cleaned("external_viewer_url", external_viewer_url_clean)

    def clean_public_url(self) -> str:
        from pacs.services.config import public_url_clean

        return self._cleaned("public_url", public_url_clean)


class ArchiveSettingsForm(forms.Form):
    """Archive policies (``pacs.ArchiveConfig``)."""

    duplicate_policy = forms.ChoiceField(label=_("Duplicate SOP Instance UID"))
    update_attributes = forms.BooleanField(required=False, label=_("Newer instances update patient/study"))
    min_free_mb = forms.IntegerField(min_value=0, label=_("Refuse storage below (MiB free)"))
    compression = forms.ChoiceField(label=_("Compression"))
    path_template = forms.CharField(max_length=256, label=_("Archive path template"))

    def __init__(self, *args, **kwargs):
        from pacs.choices import Compression, DuplicatePolicy

        super().__init__(*args, **kwargs)
        self.fields["duplicate_policy"].choices = DuplicatePolicy.choices
        self.fields["compression"].choices = Compression.choices

    def clean_path_template(self) -> str:
        from django.core.exceptions import ValidationError as DjangoValidationError

        from pacs.storage import path_template_validate

        value = self.cleaned_data["path_template"].strip()
        try:
            path_template_validate(value)
        except (DjangoValidationError, ValueError) as exc:
            raise forms.ValidationError(getattr(exc, "messages", [str(exc)])) from exc
        return value


class LogFilterForm(forms.Form):
    service = forms.ChoiceField(required=False)
    level = forms.ChoiceField(required=False, choices=[("", _("All levels"))] + [
        (level, level) for level in ("DEBUG", "INFO", "WARNING", "ERROR")])
    q = forms.CharField(required=False, max_length=200)
    lines = forms.TypedChoiceField(required=False, coerce=int, empty_value=500,
                                   choices=[(n, n) for n in (100, 500, 2000, 10000)])

    def __init__(self, *args, services: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["service"].choices = [(s, s) for s in services]


class StudyEditForm(forms.Form):
    """Demographics of one study; field names are the DICOM keywords the service takes."""

    PatientName = forms.CharField(max_length=324, required=False, label=_("Patient name"),
                                  help_text=_("DICOM form: FAMILY^GIVEN, groups separated by ="))
    PatientID = forms.CharField(max_length=64, required=False, label=_("Patient ID"))
    PatientBirthDate = forms.DateField(required=False, label=_("Birth date"),
                                       widget=forms.DateInput(attrs={"type": "date"}))
    PatientSex = forms.ChoiceField(required=False, label=_("Sex"),
                                   choices=[("", "—"), ("M", "M"), ("F", "F"), ("O", "O")])
    AccessionNumber = forms.CharField(max_length=16, required=False, label=_("Accession"))
    StudyDescription = forms.CharField(max_length=64, required=False, label=_("Description"))
    ReferringPhysicianName = forms.CharField(max_length=324, required=False, label=_("Referring physician"))
    StudyID = forms.CharField(max_length=16, required=False, label=_("Study ID"))

    @staticmethod
    def initial_for(study) -> dict:
        return {
            "PatientName": study.patient.patient_name, "PatientID": study.patient.patient_id,
            "PatientBirthDate": study.patient.patient_birth_date, "PatientSex": study.patient.patient_sex,
            "AccessionNumber": study.accession_number, "StudyDescription": study.study_description,
            "ReferringPhysicianName": study.referring_physician_name, "StudyID": study.study_id,
        }

    def changes(self) -> dict[str, str]:
        """Only the fields the user changed, as DICOM strings (dates YYYYMMDD)."""
        result = {}
        for name in self.changed_data:
            value = self.cleaned_data[name]
            result[name] = value.strftime("%Y%m%d") if hasattr(value, "strftime") else (value or "")
        return result

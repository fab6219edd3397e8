"""Forms of the worklist page: list filters, the item form and its scheduled-step formset (no writes here)."""

from __future__ import annotations

import datetime
import re

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from pacs.views.forms import quick_range_apply
from worklist.choices import PatientSex, Priority, StepStatus
from worklist.matching import ITEM_KEYS, SPS_SEQUENCE, STEP_KEYS

# Offered in the modality box (a datalist: any other CS value may be typed).
MODALITIES = ("CR", "CT", "DX", "ES", "IO", "MG", "MR", "NM", "OP", "OT", "PT", "PX", "RF", "US", "XA", "XC")
PAGE_SIZES = (25, 50, 100, 200)
# Quick ranges of the scheduled date: (first day, last day) as offsets from today.
QUICK_RANGES = {"today": (0, 0), "tomorrow": (1, 1), "7days": (0, 6)}
SORTS = {
    # sort key -> ORM ordering over ScheduledProcedureStep (indexed columns or the PK)
    "date": ["scheduled_procedure_step_start_date", "scheduled_procedure_step_start_time", "id"],
    "name": ["item__patient_name", "id"],
    "pid": ["item__patient_id", "id"],
    "accession": ["item__accession_number", "id"],
    "modality": ["modality", "id"],
    "station": ["scheduled_station_ae_title", "id"],
    "status": ["scheduled_procedure_step_status", "id"],
    "created": ["item__created_at", "id"],
}
DEFAULT_SORT = "-date"
# Choice labels as shown (the model choices are not marked for translation).
STATUS_CHOICES = [
    (StepStatus.SCHEDULED, _("Scheduled")),
    (StepStatus.ARRIVED, _("Arrived")),
    (StepStatus.IN_PROGRESS, _("In progress")),
    (StepStatus.COMPLETED, _("Completed")),
    (StepStatus.DISCONTINUED, _("Discontinued")),
]
SEX_CHOICES = [("", "—"), (PatientSex.MALE, _("Male")), (PatientSex.FEMALE, _("Female")),
               (PatientSex.OTHER, _("Other"))]
PRIORITY_CHOICES = [("", "—"), (Priority.STAT, _("Stat")), (Priority.HIGH, _("High")),
                    (Priority.ROUTINE, _("Routine")), (Priority.MEDIUM, _("Medium")), (Priority.LOW, _("Low"))]
_CS = re.compile(r"^[A-Z0-9 _]{1,16}$")  # Code String, PS3.5 Table 6.2-1


def _date_input() -> forms.DateInput:
    # ISO format whatever the language: <input type=date> only takes YYYY-MM-DD.
    return forms.DateInput(format="%Y-%m-%d", attrs={"type": "date"})


def _dicom_date(value: datetime.date | None) -> str:
    return value.strftime("%Y%m%d") if value else ""


def _contains(value: str) -> str:
    """A typed search term as a DICOM match value: ``*``/``?`` as typed, else "contains".

    Spaces match anything (``wang xiao`` finds ``WANG^XIAOMING``), as a person
    reading the displayed name expects.
    """
    value = value.strip()
    if not value:
        return ""
    if "*" in value or "?" in value:
        return value
    return "*" + re.sub(r"\s+", "*", value) + "*"


class WorklistFilterForm(forms.Form):
    """Filters of the worklist page (GET); bad values fall back to defaults."""

    patient_id = forms.CharField(required=False, max_length=64, label=_("Patient ID"))
    patient_name = forms.CharField(required=False, max_length=128, label=_("Patient name"))
    accession = forms.CharField(required=False, max_length=16, label=_("Accession"))
    modality = forms.CharField(required=False, max_length=16, label=_("Modality"))
    station = forms.CharField(required=False, max_length=16, label=_("Station AE"))
    date_from = forms.DateField(required=False, label=_("From"), widget=_date_input())
    date_to = forms.DateField(required=False, label=_("To"), widget=_date_input())
    status = forms.ChoiceField(required=False, choices=[("", _("Any")), *STATUS_CHOICES], label=_("Status"))
    range = forms.ChoiceField(required=False, choices=[(key, key) for key in QUICK_RANGES])
    sort = forms.CharField(required=False)
    per_page = forms.TypedChoiceField(required=False, coerce=int, choices=[(n, n) for n in PAGE_SIZES],
                                      empty_value=50)

    def clean(self):
        data = super().clean()
        quick_range_apply(data, QUICK_RANGES)
        sort = (data.get("sort") or DEFAULT_SORT).strip()
        data["sort"] = sort if sort.lstrip("-") in SORTS else DEFAULT_SORT
        data["per_page"] = data.get("per_page") or 50
        return data

    def dicom_filters(self) -> dict[str, str]:
        """The filters as DICOM keyword -> match value (wildcards, date range), for the selector."""
        data = self.cleaned_data
        filters = {
            "PatientID": _contains(data.get("patient_id") or ""),
            "PatientName": _contains(data.get("patient_name") or ""),
            "AccessionNumber": _contains(data.get("accession") or ""),
            "Modality": (data.get("modality") or "").strip().upper(),
            "ScheduledStationAETitle": (data.get("station") or "").strip(),
            "ScheduledProcedureStepStatus": data.get("status") or "",
        }
        date_from, date_to = data.get("date_from"), data.get("date_to")
        if date_from or date_to:
            if date_from and date_to and date_from == date_to:
                filters["ScheduledProcedureStepStartDate"] = _dicom_date(date_from)
            else:
                filters["ScheduledProcedureStepStartDate"] = f"{_dicom_date(date_from)}-{_dicom_date(date_to)}"
        return {key: value for key, value in filters.items() if value}

    def ordering(self) -> list[str]:
        sort = self.cleaned_data["sort"]
        fields = SORTS[sort.lstrip("-")]
        return [f"-{field}" for field in fields] if sort.startswith("-") else list(fields)


def _pn_field(label, *, required: bool = False, help_text: str = "") -> forms.CharField:
    return forms.CharField(max_length=324, required=required, label=label, help_text=help_text)


class WorklistItemForm(forms.Form):
    """Patient and Requested Procedure of a worklist item; field names are the model's."""

    patient_name = _pn_field(
        _("Patient name"), required=True,
        help_text=_("DICOM form FAMILY^GIVEN; Chinese as WANG^XIAOMING=王^小明 (alphabetic=ideographic) or 王^小明."),
    )
    patient_id = forms.CharField(max_length=64, label=_("Patient ID"))
    issuer_of_patient_id = forms.CharField(max_length=64, required=False, label=_("Issuer of patient ID"))
    patient_birth_date = forms.DateField(required=False, label=_("Birth date"), widget=_date_input())
    patient_sex = forms.ChoiceField(required=False, label=_("Sex"), choices=SEX_CHOICES)
    accession_number = forms.CharField(max_length=16, required=False, label=_("Accession number"))
    referring_physician_name = _pn_field(_("Referring physician"))
    admission_id = forms.CharField(max_length=64, required=False, label=_("Admission ID"))
    requested_procedure_id = forms.CharField(max_length=16, required=False, label=_("Requested procedure ID"))
    requested_procedure_description = forms.CharField(max_length=64, required=False,
                                                      label=_("Requested procedure description"))
    requested_procedure_priority = forms.ChoiceField(required=False, label=_("Priority"), choices=PRIORITY_CHOICES)
    study_instance_uid = forms.CharField(max_length=64, required=False, label=_("Study Instance UID"),
                                         help_text=_("Pre-assigned to the images the modality sends; "
                                                     "generated when left empty."))

    def clean_patient_birth_date(self):
        value = self.cleaned_data.get("patient_birth_date")
        if value and value > timezone.localdate():
            raise ValidationError(_("The birth date cannot be in the future."))
        return value

    def clean_patient_name(self) -> str:
        return self.cleaned_data["patient_name"].strip()

    @staticmethod
    def initial_for(item) -> dict:
        return {name: getattr(item, name) for name in WorklistItemForm.base_fields}


class ScheduledStepForm(forms.Form):
    """One Scheduled Procedure Step (an item of (0040,0100)); ``id`` is the step row, empty for a new step."""

    id = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    scheduled_procedure_step_id = forms.CharField(max_length=16, required=False, label=_("Step ID"))
    scheduled_procedure_step_description = forms.CharField(max_length=64, required=False,
                                                           label=_("Step description"))
    modality = forms.CharField(max_length=16, label=_("Modality"),
                               widget=forms.TextInput(attrs={"list": "modality-list", "autocomplete": "off"}))
    scheduled_station_ae_title = forms.CharField(max_length=16, required=False, label=_("Station AE title"))
    scheduled_station_name = forms.CharField(max_length=16, required=False, label=_("Station name"))
    scheduled_procedure_step_location = forms.CharField(max_length=16, required=False, label=_("Location"))
    scheduled_procedure_step_start_date = forms.DateField(label=_("Start date"), widget=_date_input())
    scheduled_procedure_step_start_time = forms.TimeField(
        required=False, label=_("Start time"), widget=forms.TimeInput(format="%H:%M", attrs={"type": "time"}))
    scheduled_performing_physician_name = _pn_field(_("Performing physician"))
    scheduled_procedure_step_status = forms.ChoiceField(choices=STATUS_CHOICES, initial=StepStatus.SCHEDULED,
                                                        label=_("Status"))
    # The status the page showed travels back with the form: an edit changes the status only when the
    # user did, never undoing what MPPS set while the page was open (and survives a re-display).
    shown_status = forms.CharField(required=False, max_length=16, widget=forms.HiddenInput)

    def clean_modality(self) -> str:
        value = self.cleaned_data["modality"].strip().upper()
        if not _CS.match(value):
            raise ValidationError(_("A modality is 1-16 capital letters or digits (CT, MR, US …)."))
        return value

    def clean_scheduled_station_ae_title(self) -> str:
        from dimse.models import ae_title_validate

        value = self.cleaned_data["scheduled_station_ae_title"].strip()
        if value:
            ae_title_validate(value)
        return value

    @staticmethod
    def initial_for(step) -> dict:
        initial = {name: getattr(step, name) for name in ScheduledStepForm.base_fields if name != "shown_status"}
        return initial | {"shown_status": step.scheduled_procedure_step_status}


class _StepFormSet(forms.BaseFormSet):
    def clean(self):
        super().clean()
        ids = [form.cleaned_data.get("scheduled_procedure_step_id") for form in self.forms
               if form.cleaned_data and not self._should_delete_form(form)]
        ids = [value for value in ids if value]
        if len(ids) != len(set(ids)):
            raise ValidationError(_("Each step of an item needs its own step ID."))


StepFormSet = forms.formset_factory(ScheduledStepForm, formset=_StepFormSet, extra=0, min_num=1,
                                    validate_min=True, can_delete=True)


def step_rows(formset) -> list[tuple[forms.Form, dict]]:
    """(form, service step dict) of every step the formset keeps, in order."""
    rows = []
    for form in formset.forms:
        if formset._should_delete_form(form) or not form.cleaned_data:
            continue
        data = {name: value for name, value in form.cleaned_data.items() if name not in ("DELETE", "shown_status")}
        if not data.get("id"):
            data.pop("id", None)
        elif data["scheduled_procedure_step_status"] == form.cleaned_data.get("shown_status"):
            # Untouched status: keep what MPPS may have set since the page was opened.
            data.pop("scheduled_procedure_step_status")
        rows.append((form, data))
    return rows


def service_errors_show(errors: dict, form: forms.Form, rows: list[tuple[forms.Form, dict]]) -> None:
    """Put the service's ``ItemInvalid`` errors (keyed by DICOM keyword) next to the fields they concern."""
    item_fields = {keyword: key.field for keyword, key in ITEM_KEYS.items()}
    step_fields = {keyword: key.field for keyword, key in STEP_KEYS.items()}
    for keyword, messages in errors.items():
        if keyword == SPS_SEQUENCE:
            if isinstance(messages, dict):
                for index, step_errors in messages.items():
                    step_form = rows[index][0] if index < len(rows) else None
                    for step_keyword, step_messages in step_errors.items():
                        field = step_fields.get(step_keyword)
                        if step_form is not None and field in step_form.fields:
                            step_form.add_error(field, step_messages)
                        elif step_form is not None:
                            step_form.add_error(None, step_messages)
            else:
                form.add_error(None, list(messages))
            continue
        field = item_fields.get(keyword)
        form.add_error(field if field in form.fields else None, messages)

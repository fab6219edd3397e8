"""Forms of the Query/Retrieve page: validate what the user types into C-FIND keys (no writes)."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from dimse.selectors import query_node_list
from pacs.views.forms import MODALITIES, QUICK_RANGES, quick_range_apply

# Return keys of the study-level C-FIND (PS3.4 C.6.2.1.2); the results table shows them.
STUDY_KEYS = [
    "StudyInstanceUID", "PatientName", "PatientID", "PatientBirthDate", "StudyDate", "StudyTime",
    "StudyDescription", "AccessionNumber", "ModalitiesInStudy", "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
]
SERIES_KEYS = [
    "StudyInstanceUID", "SeriesInstanceUID", "SeriesNumber", "Modality", "SeriesDescription", "SeriesDate",
    "NumberOfSeriesRelatedInstances",
]
RETRIEVE_METHODS = ("move", "get")


def _has_wildcard(value: str) -> bool:
    return "*" in value or "?" in value


def _dicom_text(max_length: int):
    """A validator for one value of a string VR: no backslash (value delimiter), no control characters."""

    def validate(value: str) -> None:
        if "\\" in value or not value.isprintable():
            raise forms.ValidationError(_("Backslashes and control characters are not allowed."))
        if len(value) > max_length:
            raise forms.ValidationError(
                _("At most %(n)d characters.") % {"n": max_length})

    return validate


class StudyQueryForm(forms.Form):
    """Study-level C-FIND filters (PS3.4 C.2.2.2 matching is done by the remote node)."""

    node = forms.ModelChoiceField(queryset=query_node_list(), label=_("Remote node"), empty_label=None)
    patient_id = forms.CharField(required=False, label=_("Patient ID"), validators=[_dicom_text(64)])
    patient_name = forms.CharField(required=False, label=_("Patient name"), validators=[_dicom_text(64)],
                                   help_text=_("* and ? are wildcards; a trailing * is added when you use none."))
    accession = forms.CharField(required=False, label=_("Accession"), validators=[_dicom_text(16)])
    date_from = forms.DateField(required=False, label=_("From"))
    date_to = forms.DateField(required=False, label=_("To"))
    modality = forms.ChoiceField(required=False, label=_("Modality"),
                                 choices=[("", _("Any"))] + [(m, m) for m in MODALITIES])
    description = forms.CharField(required=False, label=_("Description"), validators=[_dicom_text(64)])
    range = forms.ChoiceField(required=False, choices=[(key, key) for key in QUICK_RANGES])

    TEXT_FIELDS = ("patient_id", "patient_name", "accession", "description")

    def clean(self):
        data = super().clean()
        for name in self.TEXT_FIELDS:
            if name in data:
                data[name] = (data[name] or "").strip()
        quick_range_apply(data, QUICK_RANGES)
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", _("The end date is before the start date."))
        criteria = [data.get(name) for name in (*self.TEXT_FIELDS, "modality", "date_from", "date_to")]
        if not self.errors and not any(criteria):
            raise forms.ValidationError(
                _("Give at least one search criterion (a patient, an accession number or a date range)."))
        return data

    def filters(self) -> dict[str, str]:
        """The C-FIND matching keys (DICOM keyword: value) of the cleaned form."""
        data = self.cleaned_data
        filters: dict[str, str] = {}
        if data["patient_id"]:
            filters["PatientID"] = data["patient_id"]
        if data["patient_name"]:
            name = data["patient_name"]
            filters["PatientName"] = name if _has_wildcard(name) else f"{name}*"
        if data["accession"]:
            filters["AccessionNumber"] = data["accession"]
        if data["description"]:
            text = data["description"]
            filters["StudyDescription"] = text if _has_wildcard(text) else f"*{text}*"
        if data["modality"]:
            filters["ModalitiesInStudy"] = data["modality"]
        start, end = data.get("date_from"), data.get("date_to")
        if start or end:
            first = start.strftime("%Y%m%d") if start else ""
            last = end.strftime("%Y%m%d") if end else ""
            # Range matching, open either side (PS3.4 C.2.2.2.5); one day is a single value.
            filters["StudyDate"] = first if first == last else f"{first}-{last}"
        return filters

    def querystring_data(self) -> dict[str, str]:
        """What the user typed, to put back in the page URL after the redirect (no quick range)."""
        data = self.cleaned_data
        out = {"node": str(data["node"].pk)}
        for name in (*self.TEXT_FIELDS, "modality"):
            if data.get(name):
                out[name] = data[name]
        for name in ("date_from", "date_to"):
            if data.get(name):
                out[name] = data[name].isoformat()
        return out


class RetrieveForm(forms.Form):
    """Retrieve studies or series listed by one of the user's query jobs (``uid`` repeated)."""

    query = forms.IntegerField(min_value=1)
    method = forms.ChoiceField(required=False, choices=[(m, m) for m in RETRIEVE_METHODS])

    def __init__(self, data=None, *args, **kwargs) -> None:
        super().__init__(data, *args, **kwargs)
        self.uids = []
        if data is not None:
            # A row's own button names one UID ("only"); the toolbar button sends the checked ones.
            only = data.get("only", "").strip()
            self.uids = [only] if only else [uid.strip() for uid in data.getlist("uid")]

    def clean(self):
        from pacs.storage import uid_is_valid

        data = super().clean()
        uids = list(dict.fromkeys(uid for uid in self.uids if uid))
        if not uids:
            raise forms.ValidationError(_("Choose at least one study or series."))
        if len(uids) > 100:
            raise forms.ValidationError(_("At most 100 studies at once."))
        if not all(uid_is_valid(uid) for uid in uids):
            raise forms.ValidationError(_("Not a valid UID."))
        data["uids"] = uids
        data["method"] = data.get("method") or "move"
        return data

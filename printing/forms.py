"""Forms of the print job pages: list filters and the forward (re-print) form (no writes here)."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from pacs.views.forms import quick_range_apply
from printing.choices import PrintJobStatus

PAGE_SIZES = (25, 50, 100)
# Quick ranges of the received date: (first day, last day) as offsets in days from today.
QUICK_RANGES = {"today": (0, 0), "7days": (-6, 0), "30days": (-29, 0)}
# Choice labels as shown (the model choices are not marked for translation).
STATUS_CHOICES = [
    (PrintJobStatus.PENDING, _("Pending")),
    (PrintJobStatus.PRINTING, _("Printing")),
    (PrintJobStatus.DONE, _("Done")),
    (PrintJobStatus.FAILURE, _("Failure")),
]


class PrintJobFilterForm(forms.Form):
    """Filters of the print job list (GET); bad values fall back to defaults."""

    status = forms.ChoiceField(required=False, label=_("State"),
                               choices=[("", _("Any")), *STATUS_CHOICES])
    calling_aet = forms.CharField(required=False, max_length=16, label=_("Calling AE"))
    date_from = forms.DateField(required=False, label=_("From"),
                                widget=forms.DateInput(format="%Y-%m-%d", attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label=_("To"),
                              widget=forms.DateInput(format="%Y-%m-%d", attrs={"type": "date"}))
    q = forms.CharField(required=False, max_length=64, label=_("Text"))
    range = forms.ChoiceField(required=False, choices=[(key, key) for key in QUICK_RANGES])
    per_page = forms.TypedChoiceField(required=False, coerce=int, choices=[(n, n) for n in PAGE_SIZES],
                                      empty_value=25)

    def clean(self):
        data = super().clean()
        quick_range_apply(data, QUICK_RANGES)
        data["per_page"] = data.get("per_page") or 25
        return data

    def search(self) -> dict:
        """Keyword arguments of ``printing.selectors.print_job_search``."""
        data = self.cleaned_data
        return {"status": data.get("status") or "", "calling_aet": data.get("calling_aet") or "",
                "date_from": data.get("date_from"), "date_to": data.get("date_to"), "text": data.get("q") or ""}


class ForwardForm(forms.Form):
    """Re-print on a printer node: every film, or the films ticked."""

    node = forms.TypedChoiceField(coerce=int, label=_("Printer"))
    films = forms.TypedMultipleChoiceField(coerce=int, required=False, label=_("Films"),
                                           widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args, printers: list, film_numbers: list[int], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["node"].choices = [(node.pk, f"{node.ae_title} ({node.host}:{node.port})") for node in printers]
        self.fields["films"].choices = [(number, number) for number in film_numbers]

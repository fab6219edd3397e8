"""Worklist web pages: scheduled steps with filters, sorting and paging; item create, edit and delete.

Reads through :mod:`worklist.selectors`, writes through :mod:`worklist.services.items`
(the same functions as the REST API and the admin); the views only validate
forms and translate the outcome.
"""

from __future__ import annotations

import logging

from django.contrib import messages
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views import View
from django.views.generic import TemplateView

from pacs.matching import MatchingError
from pacs.views.mixins import PageMixin
from worklist.exceptions import ItemInvalid
from worklist.forms import (
    MODALITIES,
    PAGE_SIZES,
    ScheduledStepForm,
    StepFormSet,
    WorklistFilterForm,
    WorklistItemForm,
    service_errors_show,
    step_rows,
)
from worklist.models import WorklistItem
from worklist.selectors import worklist_item_get, worklist_step_list
from worklist.services.items import worklist_item_create, worklist_item_delete, worklist_item_edit

logger = logging.getLogger(__name__)

STEP_PREFIX = "steps"
_COLUMNS = [
    ("date", gettext_lazy("Scheduled"), ""),
    ("name", gettext_lazy("Patient name"), ""),
    ("pid", gettext_lazy("Patient ID"), ""),
    (None, gettext_lazy("Birth date"), ""),
    (None, gettext_lazy("Sex"), ""),
    ("accession", gettext_lazy("Accession"), ""),
    ("modality", gettext_lazy("Modality"), ""),
    ("station", gettext_lazy("Station AE"), ""),
    (None, gettext_lazy("Procedure"), ""),
    ("status", gettext_lazy("Status"), ""),
]
_DESCENDING_FIRST = {"date", "created"}


def _columns(sort: str) -> list[dict]:
    """Header cells: a click sorts by the column, a second click reverses it."""
    columns = []
    for key, label, css in _COLUMNS:
        direction, following = "", ""
        if key and sort.lstrip("-") == key:
            direction = "desc" if sort.startswith("-") else "asc"
            following = key if direction == "desc" else f"-{key}"
        elif key:
            following = f"-{key}" if key in _DESCENDING_FIRST else key
        columns.append({"key": key, "label": label, "css": css, "direction": direction, "next": following})
    return columns


class WorklistListView(PageMixin, TemplateView):
    """One row per scheduled procedure step (what a modality's C-FIND answers), every status."""

    template_name = "worklist/item_list.html"
    nav = "worklist"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        form = WorklistFilterForm(self.request.GET or None)
        if not (form.is_bound and form.is_valid()):
            form = WorklistFilterForm({})
            form.is_valid()
        filters = form.cleaned_data
        try:
            steps = worklist_step_list(form.dicom_filters()).order_by(*form.ordering())
        except MatchingError as exc:
            # A value the matcher refuses (e.g. a stray backslash): say so, list nothing.
            messages.error(self.request, _("Invalid filter: %(reason)s") % {"reason": exc.message})
            steps = worklist_step_list({}).none()
        page = Paginator(steps, filters["per_page"]).get_page(self.request.GET.get("page"))
        context.update(form=form, filters=filters, page=page, steps=page.object_list, sort=filters["sort"],
                       columns=_columns(filters["sort"]), modalities=MODALITIES, page_sizes=PAGE_SIZES,
                       statuses=form.fields["status"].choices[1:])
        return context


class _ItemFormView(PageMixin, PermissionRequiredMixin, TemplateView):
    """Shared GET/POST of the create and edit pages: item form + step formset, errors next to fields."""

    template_name = "worklist/item_form.html"
    nav = "worklist"
    item: WorklistItem | None = None

    def forms(self, data=None):
        raise NotImplementedError

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        if "form" not in kwargs:
            context["form"], context["formset"] = self.forms()
        context.update(item=self.item, modalities=MODALITIES)
        return context

    def post(self, request, *args, **kwargs):
        form, formset = self.forms(request.POST)
        if form.is_valid() and formset.is_valid():
            rows = step_rows(formset)
            try:
                item = self.save(form.cleaned_data, [data for _form, data in rows])
            except ItemInvalid as exc:
                service_errors_show(exc.errors, form, rows)
            else:
                # The patient's orders, the new or edited one among them.
                return redirect(reverse("worklist-list") + "?" + urlencode({"patient_id": item.patient_id}))
        messages.error(request, _("Please correct the errors below."))
        return self.render_to_response(self.get_context_data(form=form, formset=formset), status=400)

    def save(self, fields: dict, steps: list[dict]) -> WorklistItem:
        raise NotImplementedError


class WorklistItemCreateView(_ItemFormView):
    permission_required = "worklist.add_worklistitem"

    def forms(self, data=None):
        initial = [{"scheduled_procedure_step_start_date": timezone.localdate()}]
        return WorklistItemForm(data), StepFormSet(data, prefix=STEP_PREFIX, initial=initial)

    def save(self, fields: dict, steps: list[dict]) -> WorklistItem:
        item = worklist_item_create(fields=fields, steps=steps)
        logger.info("worklist item created via web user=%s item_id=%s", self.request.user.get_username(), item.pk)
        messages.success(self.request, _("Worklist item created."))
        return item


class WorklistItemEditView(_ItemFormView):
    permission_required = "worklist.change_worklistitem"

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated:
            try:
                self.item = worklist_item_get(kwargs["item_id"])
            except WorklistItem.DoesNotExist as exc:
                raise Http404("No such worklist item") from exc
        return super().dispatch(request, *args, **kwargs)

    def forms(self, data=None):
        steps = [ScheduledStepForm.initial_for(step) for step in self.item.steps.all()]
        return (WorklistItemForm(data, initial=WorklistItemForm.initial_for(self.item)),
                StepFormSet(data, prefix=STEP_PREFIX, initial=steps))

    def save(self, fields: dict, steps: list[dict]) -> WorklistItem:
        try:
            item = worklist_item_edit(item_id=self.item.pk, fields=fields, steps=steps)
        except WorklistItem.DoesNotExist as exc:
            raise Http404("No such worklist item") from exc
        logger.info("worklist item edited via web user=%s item_id=%s", self.request.user.get_username(), item.pk)
        messages.success(self.request, _("Worklist item saved."))
        return item


class WorklistItemDeleteView(PageMixin, PermissionRequiredMixin, View):
    """POST (after a confirmation): delete the item and its steps through the service."""

    permission_required = "worklist.delete_worklistitem"

    def post(self, request, item_id: int):
        try:
            worklist_item_delete(item_id=item_id)
        except WorklistItem.DoesNotExist as exc:
            raise Http404("No such worklist item") from exc
        logger.info("worklist item deleted via web user=%s item_id=%s", request.user.get_username(), item_id)
        messages.success(request, _("Worklist item deleted."))
        return redirect(reverse("worklist-list"))

"""Reads of the worklist app (C-FIND, REST API, admin)."""

from __future__ import annotations

from collections.abc import Mapping

from django.db.models import QuerySet

from pacs.matching import MatchingError
from worklist.dicom import WorklistQuery
from worklist.matching import worklist_q
from worklist.models import PerformedProcedureStep, ScheduledProcedureStep, WorklistItem


def worklist_step_find(query: WorklistQuery) -> tuple[QuerySet, list[str]]:
    """Scheduled procedure steps matching a Modality Worklist query (PS3.4 K.6.1.2.2).

    Returns
    -------
    (QuerySet, unsupported)
        Steps with their item joined (one query for the whole answer), by start
        date/time; and the keys that carried values this archive cannot match.

    Raises
    ------
    pacs.matching.MatchingError
        Malformed values or keys.
    """
    q, unsupported = worklist_q(query.filters, query.step_filters)
    steps = ScheduledProcedureStep.objects.filter(q).select_related("item")
    return steps, unsupported


def worklist_item_list(filters: Mapping[str, object] | None = None) -> QuerySet:
    """Worklist items with at least one step matching *filters* (DICOM keywords, any level).

    Keys of the Scheduled Procedure Step Sequence and of the item may be mixed
    (``{"PatientID": "P1", "Modality": "CT", "ScheduledProcedureStepStartDate": "20261121-"}``);
    every status is listed unless ScheduledProcedureStepStatus is given.

    Raises
    ------
    pacs.matching.MatchingError
        Unknown keyword or malformed value.
    """
    from worklist.matching import ITEM_KEYS, key_name

    item_filters, step_filters = {}, {}
    for key, value in (filters or {}).items():
        keyword = key_name(key) or key
        (item_filters if keyword in ITEM_KEYS else step_filters)[keyword] = value
    items = WorklistItem.objects.prefetch_related("steps")
    if not item_filters and not step_filters:
        return items
    q, unsupported = worklist_q(item_filters, step_filters, schedulable_only=False)
    if unsupported:
        raise MatchingError(f"cannot filter on {', '.join(unsupported)}", dicom_status=0xC000)
    return items.filter(pk__in=ScheduledProcedureStep.objects.filter(q).values("item_id"))


def worklist_item_get(item_id: int) -> WorklistItem:
    """One item with its steps. Raises ``WorklistItem.DoesNotExist``."""
    return WorklistItem.objects.prefetch_related("steps").get(pk=item_id)


def performed_step_list() -> QuerySet:
    """MPPS records, newest first, with their performed series."""
    return PerformedProcedureStep.objects.prefetch_related("performed_series", "scheduled_steps")


def performed_step_get(sop_instance_uid: str) -> PerformedProcedureStep:
    """One MPPS record. Raises ``PerformedProcedureStep.DoesNotExist``."""
    return performed_step_list().get(sop_instance_uid=sop_instance_uid)


def worklist_step_list(filters: Mapping[str, object] | None = None) -> QuerySet:
    """Scheduled procedure steps (their item joined) matching *filters*: the web worklist, one row per step.

    Keys are DICOM keywords of either level, matched as in C-FIND (PS3.4 C.2.2.2);
    every status is listed unless ScheduledProcedureStepStatus is given.

    Raises
    ------
    pacs.matching.MatchingError
        Unknown keyword or malformed value.
    """
    from worklist.matching import ITEM_KEYS, key_name

    item_filters, step_filters = {}, {}
    for key, value in (filters or {}).items():
        keyword = key_name(key) or key
        (item_filters if keyword in ITEM_KEYS else step_filters)[keyword] = value
    q, unsupported = worklist_q(item_filters, step_filters, schedulable_only=False)
    if unsupported:
        raise MatchingError(f"cannot filter on {', '.join(unsupported)}", dicom_status=0xC000)
    return ScheduledProcedureStep.objects.filter(q).select_related("item")

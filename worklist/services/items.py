"""Worklist items: the one write path for WorklistItem and ScheduledProcedureStep rows.

Used by the REST API, the admin and MPPS.  Input uses model field names (the
snake_case DICOM keywords); every write runs in one transaction and validates
the whole item first, so a bad step leaves nothing saved.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from pydicom.uid import generate_uid

from pacs.exceptions import InvalidUID
from pacs.storage import uid_validate
from worklist.choices import StepStatus
from worklist.exceptions import ItemInvalid
from worklist.matching import ITEM_KEYS, SPS_SEQUENCE, STEP_KEYS
from worklist.models import ScheduledProcedureStep, WorklistItem

logger = logging.getLogger(__name__)

_ITEM_KEYWORD = {key.field: keyword for keyword, key in ITEM_KEYS.items()}
_STEP_KEYWORD = {key.field: keyword for keyword, key in STEP_KEYS.items()}
_PN_GROUP_LIMIT = 64  # PS3.5 Table 6.2-1: 64 characters per component group


def _name_groups(item: WorklistItem) -> None:
    groups = (item.patient_name.split("=") + ["", ""])[:3]
    alphabetic, ideographic, phonetic = (group.strip() for group in groups)
    item.patient_name_alphabetic, item.patient_name_ideographic, item.patient_name_phonetic = (
        alphabetic, ideographic, phonetic)


def _pn_errors(value: str) -> list[str]:
    errors = []
    groups = value.split("=")
    if len(groups) > 3:
        errors.append("a person name has at most 3 component groups (alphabetic=ideographic=phonetic)")
    if any(len(group) > _PN_GROUP_LIMIT for group in groups):
        errors.append(f"each component group is at most {_PN_GROUP_LIMIT} characters")
    if any(len(group.split("^")) > 5 for group in groups):
        errors.append("a component group has at most 5 components separated by ^")
    return errors


def _validate(obj, keywords: dict[str, str], pn_fields: Iterable[str], exclude: list[str]) -> dict:
    errors: dict[str, list[str]] = {}
    try:
        obj.full_clean(exclude=exclude, validate_unique=False)
    except ValidationError as exc:
        for field_name, messages in exc.message_dict.items():
            errors.setdefault(keywords.get(field_name, field_name), []).extend(messages)
    for field_name in pn_fields:
        messages = _pn_errors(getattr(obj, field_name))
        if messages:
            errors.setdefault(keywords[field_name], []).extend(messages)
    return errors


def _item_errors(item: WorklistItem) -> dict:
    errors = _validate(item, _ITEM_KEYWORD, ["patient_name", "referring_physician_name"],
                       ["patient_name_alphabetic", "patient_name_ideographic", "patient_name_phonetic"])
    try:
        uid_validate(item.study_instance_uid, "StudyInstanceUID")
    except InvalidUID as exc:
        errors.setdefault("StudyInstanceUID", []).append(exc.message)
    clash = WorklistItem.objects.filter(study_instance_uid=item.study_instance_uid).exclude(pk=item.pk).exists()
    if clash:
        errors.setdefault("StudyInstanceUID", []).append("another worklist item already uses this Study Instance UID")
    return errors


def _step_errors(steps: list[ScheduledProcedureStep]) -> dict:
    errors: dict = {}
    for index, step in enumerate(steps):
        step_errors = _validate(step, _STEP_KEYWORD, ["scheduled_performing_physician_name"], ["item"])
        if step_errors:
            errors.setdefault(SPS_SEQUENCE, {})[index] = step_errors
    return errors


def _apply(obj, fields: dict, allowed: dict[str, str]) -> None:
    unknown = sorted(set(fields) - set(allowed))
    if unknown:
        raise ItemInvalid({name: ["not a worklist attribute"] for name in unknown})
    for name, value in fields.items():
        setattr(obj, name, "" if value is None and name not in _NULLABLE else value)


_NULLABLE = {"patient_birth_date", "scheduled_procedure_step_start_date", "scheduled_procedure_step_start_time"}


def _save_steps(item: WorklistItem, steps: list[ScheduledProcedureStep]) -> None:
    for step in steps:
        step.item = item
        step.save()


@transaction.atomic
def worklist_item_create(*, fields: dict, steps: list[dict]) -> WorklistItem:
    """Create a worklist item with its scheduled procedure steps.

    Parameters
    ----------
    fields
        WorklistItem field values (``patient_name``, ``patient_id``, ...);
        a missing ``study_instance_uid`` is generated (pre-assigned UID).
    steps
        One dict of ScheduledProcedureStep field values per step (at least one).

    Raises
    ------
    ItemInvalid
        With every problem found, keyed by DICOM keyword; nothing is saved.
    """
    item = WorklistItem()
    _apply(item, fields, _ITEM_KEYWORD)
    if not item.study_instance_uid:
        item.study_instance_uid = generate_uid()
    _name_groups(item)
    step_rows = _steps_build(steps)
    errors = _item_errors(item) | _step_errors(step_rows)
    if not step_rows:
        errors[SPS_SEQUENCE] = ["at least one scheduled procedure step is required"]
    if errors:
        raise ItemInvalid(errors)
    item.save()
    _save_steps(item, step_rows)
    logger.info("worklist item created item_id=%s steps=%d study_instance_uid=%s",
                item.pk, len(step_rows), item.study_instance_uid)
    return item


def _steps_build(steps: list[dict], existing: dict[str, ScheduledProcedureStep] | None = None) -> list:
    rows = []
    for data in steps:
        step_id = data.get("scheduled_procedure_step_id") or ""
        step = (existing or {}).pop(step_id, None) if step_id else None
        if step is None:
            step = ScheduledProcedureStep()
        else:
            # A listed step is described in full: what it omits is cleared; its status stays.
            _apply(step, {name: None for name in _STEP_KEYWORD if name != "scheduled_procedure_step_status"},
                   _STEP_KEYWORD)
        _apply(step, data, _STEP_KEYWORD)
        rows.append(step)
    return rows


@transaction.atomic
def worklist_item_update(*, item_id: int, fields: dict, steps: list[dict] | None = None) -> WorklistItem:
    """Change a worklist item; when *steps* is given it replaces the step list.

    Steps are matched to existing ones by ScheduledProcedureStepID (keeping
    their MPPS links); existing steps not listed are removed.

    Raises
    ------
    WorklistItem.DoesNotExist
        No such item.
    ItemInvalid
        Any invalid value; nothing is saved.
    """
    item = WorklistItem.objects.select_for_update().get(pk=item_id)
    _apply(item, fields, _ITEM_KEYWORD)
    if not item.study_instance_uid:
        item.study_instance_uid = generate_uid()
    _name_groups(item)
    errors = _item_errors(item)
    step_rows: list[ScheduledProcedureStep] = []
    if steps is not None:
        current = list(item.steps.all())
        leftover = {s.scheduled_procedure_step_id: s for s in current if s.scheduled_procedure_step_id}
        step_rows = _steps_build(steps, leftover)
        errors |= _step_errors(step_rows)
        if not step_rows:
            errors[SPS_SEQUENCE] = ["at least one scheduled procedure step is required"]
    if errors:
        raise ItemInvalid(errors)
    item.save()
    if steps is not None:
        keep = {s.pk for s in step_rows if s.pk}
        item.steps.exclude(pk__in=keep).delete()
        _save_steps(item, step_rows)
    logger.info("worklist item updated item_id=%s", item.pk)
    return item


def worklist_item_delete(*, item_id: int) -> None:
    """Delete a worklist item and its steps (MPPS records keep their data, lose the link).

    Raises
    ------
    WorklistItem.DoesNotExist
        No such item.
    """
    deleted, _ = WorklistItem.objects.filter(pk=item_id).delete()
    if not deleted:
        raise WorklistItem.DoesNotExist(f"worklist item {item_id} does not exist")
    logger.info("worklist item deleted item_id=%s", item_id)


def worklist_item_errors(*, item: WorklistItem) -> dict:
    """Problems of an unsaved item (keyed by DICOM keyword); ``{}`` when it can be saved."""
    if not item.study_instance_uid:
        item.study_instance_uid = generate_uid()
    _name_groups(item)
    return _item_errors(item)


def worklist_item_admin_save(*, item: WorklistItem) -> WorklistItem:
    """Save an item edited in the Django admin: derive name groups and the Study UID, validate.

    Raises
    ------
    ItemInvalid
        Same checks as the API.
    """
    if not item.study_instance_uid:
        item.study_instance_uid = generate_uid()
    _name_groups(item)
    errors = _item_errors(item)
    if errors:
        raise ItemInvalid(errors)
    item.save()
    return item


def worklist_step_admin_save(*, step: ScheduledProcedureStep) -> ScheduledProcedureStep:
    """Save a step edited in the admin, stamping ``status_changed_at`` when the status changed."""
    if step.pk:
        old = ScheduledProcedureStep.objects.filter(pk=step.pk).values_list(
            "scheduled_procedure_step_status", flat=True).first()
        if old != step.scheduled_procedure_step_status:
            step.status_changed_at = timezone.now()
    step.save()
    return step


def steps_status_set(*, step_ids: Iterable[int], status: StepStatus, allowed_from: Iterable[str]) -> int:
    """Move steps to *status* (only those currently in *allowed_from*); return how many moved.

    Called by the MPPS services inside their transaction.
    """
    moved = ScheduledProcedureStep.objects.filter(
        pk__in=list(step_ids), scheduled_procedure_step_status__in=list(allowed_from)
    ).update(scheduled_procedure_step_status=status, status_changed_at=timezone.now())
    return moved


@transaction.atomic
def worklist_item_edit(*, item_id: int, fields: dict, steps: list[dict]) -> WorklistItem:
    """Change an item and its whole step list as an edit form shows them (the web page).

    Unlike :func:`worklist_item_update` (steps matched by ScheduledProcedureStepID,
    which the API identifies them by), steps here are matched by their row id
    (``"id"`` in a step dict; absent for a new step), so a step without a
    ScheduledProcedureStepID keeps its MPPS links.  Steps not listed are removed;
    a status change stamps ``status_changed_at`` (housekeeping ages by it).

    Raises
    ------
    WorklistItem.DoesNotExist
        No such item.
    ItemInvalid
        Any invalid value, or a step id that is not one of the item's steps; nothing is saved.
    """
    item = WorklistItem.objects.select_for_update().get(pk=item_id)
    _apply(item, fields, _ITEM_KEYWORD)
    if not item.study_instance_uid:
        item.study_instance_uid = generate_uid()
    _name_groups(item)
    errors = _item_errors(item)
    current = {step.pk: step for step in item.steps.all()}
    rows: list[ScheduledProcedureStep] = []
    positions: list[int] = []  # index in *steps* of each row, for the error keys
    for index, data in enumerate(steps):
        data = dict(data)
        step_pk = data.pop("id", None)
        if step_pk is None:
            step = ScheduledProcedureStep()
        elif step_pk in current:
            step = current.pop(step_pk)
        else:
            errors.setdefault(SPS_SEQUENCE, {})[index] = {"id": ["this step no longer exists"]}
            continue
        old_status = step.scheduled_procedure_step_status if step.pk else None
        _apply(step, data, _STEP_KEYWORD)
        if old_status is not None and old_status != step.scheduled_procedure_step_status:
            step.status_changed_at = timezone.now()
        rows.append(step)
        positions.append(index)
    for row_index, step_errors in _step_errors(rows).get(SPS_SEQUENCE, {}).items():
        errors.setdefault(SPS_SEQUENCE, {})[positions[row_index]] = step_errors
    if not rows and SPS_SEQUENCE not in errors:
        errors[SPS_SEQUENCE] = ["at least one scheduled procedure step is required"]
    if errors:
        raise ItemInvalid(errors)
    item.save()
    item.steps.filter(pk__in=list(current)).delete()
    _save_steps(item, rows)
    logger.info("worklist item edited item_id=%s steps=%d removed=%d", item.pk, len(rows), len(current))
    return item

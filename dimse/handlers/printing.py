"""Print SCP: Basic Grayscale and Basic Color Print Management Meta SOP Classes (PS3.4 Annex H).

Printer N-GET, Basic Film Session N-CREATE/N-SET/N-ACTION/N-DELETE, Basic
Film Box N-CREATE/N-SET/N-ACTION/N-DELETE, Basic Grayscale/Color Image Box
N-SET, Basic Annotation Box N-SET, Presentation LUT N-CREATE/N-DELETE and
Print Job N-GET.  Each handler
takes the request apart, calls one ``printing.services`` function with the
association's :class:`PrintContext` and answers its status; a
``PrintError`` becomes its N-* status with the message as Error Comment.
"""

from __future__ import annotations

import logging
import threading
import weakref

from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import evt

from dimse.db import db_release, uses_db
from dimse.statuses import NO_SUCH_ACTION, NO_SUCH_SOP_CLASS, SUCCESS, UNRECOGNISED_OPERATION
from printing.exceptions import PrintError
from printing.services import films, printer, sessions
from printing.services.context import (
    BASIC_ANNOTATION_BOX,
    BASIC_COLOR_IMAGE_BOX,
    BASIC_FILM_BOX,
    BASIC_FILM_SESSION,
    BASIC_GRAYSCALE_IMAGE_BOX,
    COLOR_META,
    GRAYSCALE_META,
    PRESENTATION_LUT,
    PRINT_JOB,
    PRINTER,
    PrintContext,
)

logger = logging.getLogger(__name__)

# Negotiable abstract syntaxes: the two meta SOP classes (Film Session, Film Box,
# Image Box, Printer) and the separately negotiated Presentation LUT, Print Job,
# Printer and Basic Annotation Box SOP classes (PS3.4 H.3).
PRINT_ABSTRACT_SYNTAXES = [GRAYSCALE_META, COLOR_META, PRESENTATION_LUT, PRINT_JOB, PRINTER, BASIC_ANNOTATION_BOX]
PRINT_TRANSFER_SYNTAXES = [ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian]
ACTION_PRINT = 1  # Action Type ID of Film Session/Film Box "Print" (PS3.4 H.4.1.2.3, H.4.2.2.3)

_contexts: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_contexts_lock = threading.Lock()


def configure(ae, listener) -> list:
    """Add the print SOP classes and the DIMSE-N handlers to the print listener's AE."""
    for uid in PRINT_ABSTRACT_SYNTAXES:
        ae.add_supported_context(uid, PRINT_TRANSFER_SYNTAXES)
    return [
        (evt.EVT_N_GET, handle_n_get),
        (evt.EVT_N_CREATE, handle_n_create),
        (evt.EVT_N_SET, handle_n_set),
        (evt.EVT_N_ACTION, handle_n_action),
        (evt.EVT_N_DELETE, handle_n_delete),
        (evt.EVT_RELEASED, handle_released),
        (evt.EVT_ABORTED, handle_aborted),
        (evt.EVT_CONN_CLOSE, handle_aborted),
    ]


def _context(event) -> PrintContext:
    with _contexts_lock:
        context = _contexts.get(event.assoc)
        if context is None:
            requestor = event.assoc.requestor
            context = PrintContext(
                calling_aet=requestor.ae_title.strip(),
                called_aet=event.assoc.acceptor.ae_title.strip(),
                peer_address=requestor.address,
            )
            _contexts[event.assoc] = context
        return context


def _failure(status: int, comment: str) -> Dataset:
    ds = Dataset()
    ds.Status = status
    ds.ErrorComment = comment[:64]
    return ds


def _error(exc: PrintError) -> Dataset:
    return _failure(exc.dicom_status, exc.message)


def _identifiers(request) -> list[int] | None:
    value = request.AttributeIdentifierList
    if value is None:
        return None
    return list(value) if isinstance(value, list) else [value]


@uses_db
def handle_n_get(event) -> tuple[int | Dataset, Dataset | None]:
    """N-GET of the Printer (status) or a Print Job (execution status)."""
    request = event.request
    try:
        if request.RequestedSOPClassUID == PRINTER:
            return SUCCESS, printer.printer_get(
                sop_instance_uid=request.RequestedSOPInstanceUID, identifiers=_identifiers(request)
            )
        if request.RequestedSOPClassUID == PRINT_JOB:
            return SUCCESS, films.print_job_get(
                sop_instance_uid=request.RequestedSOPInstanceUID, identifiers=_identifiers(request)
            )
    except PrintError as exc:
        return _error(exc), None
    return _failure(UNRECOGNISED_OPERATION, f"N-GET not supported for {request.RequestedSOPClassUID}"), None


@uses_db
def handle_n_create(event) -> tuple[int | Dataset, Dataset | None]:
    """N-CREATE of a Film Session, Film Box or Presentation LUT (SCU-chosen or SCP-assigned UID)."""
    context = _context(event)
    request = event.request
    class_uid, uid = request.AffectedSOPClassUID, request.AffectedSOPInstanceUID
    meta_uid = event.context.abstract_syntax
    try:
        if class_uid == BASIC_FILM_SESSION and meta_uid in (GRAYSCALE_META, COLOR_META):
            uid_out, reply = sessions.film_session_create(
                context=context, meta_sop_class_uid=meta_uid, sop_instance_uid=uid, attributes=event.attribute_list
            )
        elif class_uid == BASIC_FILM_BOX:
            uid_out, reply = sessions.film_box_create(
                context=context, sop_instance_uid=uid, attributes=event.attribute_list
            )
        elif class_uid == PRESENTATION_LUT:
            uid_out, reply = printer.presentation_lut_create(
                context=context, sop_instance_uid=uid, attributes=event.attribute_list
            )
        else:
            return _failure(NO_SUCH_SOP_CLASS, f"N-CREATE not supported for {class_uid}"), None
    except PrintError as exc:
        return _error(exc), None
    if uid is None:
        reply.AffectedSOPInstanceUID = uid_out  # pynetdicom moves it into the response (PS3.7 10.1.5.1.4)
    return SUCCESS, reply


@uses_db
def handle_n_set(event) -> tuple[int | Dataset, Dataset | None]:
    """N-SET of a Film Session, Film Box, Grayscale/Color Image Box or Annotation Box."""
    context = _context(event)
    request = event.request
    class_uid, uid = request.RequestedSOPClassUID, request.RequestedSOPInstanceUID
    try:
        if class_uid == BASIC_FILM_SESSION:
            reply = sessions.film_session_update(
                context=context, sop_instance_uid=uid, modifications=event.modification_list
            )
        elif class_uid == BASIC_FILM_BOX:
            reply = sessions.film_box_update(
                context=context, sop_instance_uid=uid, modifications=event.modification_list
            )
        elif class_uid in (BASIC_GRAYSCALE_IMAGE_BOX, BASIC_COLOR_IMAGE_BOX):
            reply = sessions.image_box_set(
                context=context,
                sop_class_uid=class_uid,
                sop_instance_uid=uid,
                modifications=event.modification_list,
                little_endian=event.context.transfer_syntax[0] != ExplicitVRBigEndian,
            )
        elif class_uid == BASIC_ANNOTATION_BOX:
            reply = sessions.annotation_box_set(
                context=context, sop_instance_uid=uid, modifications=event.modification_list
            )
        else:
            return _failure(NO_SUCH_SOP_CLASS, f"N-SET not supported for {class_uid}"), None
    except PrintError as exc:
        return _error(exc), None
    return SUCCESS, reply


@uses_db
def handle_n_action(event) -> tuple[int | Dataset, Dataset | None]:
    """N-ACTION Print of a Film Session or Film Box: compose, archive, answer the Print Job."""
    context = _context(event)
    request = event.request
    class_uid, uid = request.RequestedSOPClassUID, request.RequestedSOPInstanceUID
    if request.ActionTypeID != ACTION_PRINT:
        return _failure(NO_SUCH_ACTION, f"Action Type {request.ActionTypeID} is not Print (1)"), None
    try:
        if class_uid == BASIC_FILM_SESSION:
            result = films.film_session_print(context=context, sop_instance_uid=uid)
        elif class_uid == BASIC_FILM_BOX:
            result = films.film_box_print(context=context, sop_instance_uid=uid)
        else:
            return _failure(NO_SUCH_SOP_CLASS, f"N-ACTION not supported for {class_uid}"), None
    except PrintError as exc:
        return _error(exc), None
    return (result.warning or SUCCESS), result.action_reply()


@uses_db
def handle_n_delete(event) -> int | Dataset:
    """N-DELETE of a Film Session, Film Box or Presentation LUT."""
    context = _context(event)
    request = event.request
    class_uid, uid = request.RequestedSOPClassUID, request.RequestedSOPInstanceUID
    try:
        if class_uid == BASIC_FILM_SESSION:
            sessions.film_session_delete(context=context, sop_instance_uid=uid)
        elif class_uid == BASIC_FILM_BOX:
            sessions.film_box_delete(context=context, sop_instance_uid=uid)
        elif class_uid == PRESENTATION_LUT:
            printer.presentation_lut_delete(context=context, sop_instance_uid=uid)
        else:
            return _failure(NO_SUCH_SOP_CLASS, f"N-DELETE not supported for {class_uid}")
    except PrintError as exc:
        return _error(exc)
    return SUCCESS


def _association_end(event, *, aborted: bool) -> None:
    with _contexts_lock:
        context = _contexts.pop(event.assoc, None)
    if context is None or context.job_id is None:
        return
    try:
        sessions.association_end(context=context, aborted=aborted)
    except Exception:
        logger.exception("print session close failed calling_aet=%s", context.calling_aet)
    finally:
        db_release()


def handle_released(event) -> None:
    _association_end(event, aborted=False)


def handle_aborted(event) -> None:
    _association_end(event, aborted=True)

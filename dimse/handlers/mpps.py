"""MPPS SCP: Modality Performed Procedure Step N-CREATE and N-SET (PS3.4 F.7).

Runs on the worklist listener.  The handlers call the MPPS services and turn
their errors into the status, Error Comment, Error ID and Attribute Identifier
List of the response.
"""

from __future__ import annotations

import logging

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import evt
from pynetdicom.sop_class import ModalityPerformedProcedureStep

from dimse.db import uses_db
from dimse.server import association_state
from dimse.statuses import SUCCESS
from worklist.exceptions import PerformedStepError
from worklist.services.mpps import performed_step_create, performed_step_update

logger = logging.getLogger(__name__)


def configure(ae, listener) -> list:
    """Add the MPPS SOP class; return its N-CREATE and N-SET handlers."""
    ae.add_supported_context(ModalityPerformedProcedureStep)
    return [(evt.EVT_N_CREATE, handle_n_create), (evt.EVT_N_SET, handle_n_set)]


def _failure(exc: PerformedStepError, *, with_attributes: bool) -> Dataset:
    # Attribute Identifier List exists in N-SET-RSP only (PS3.7 10.1.1.1.x vs 10.1.5.1.x).
    ds = Dataset()
    ds.Status = exc.dicom_status
    ds.ErrorComment = exc.message[:64]
    if exc.error_id is not None:
        ds.ErrorID = exc.error_id
    if with_attributes and exc.attribute_tags:
        ds.AttributeIdentifierList = exc.attribute_tags
    return ds


@uses_db
def handle_n_create(event) -> tuple:
    """Create an MPPS instance (PS3.4 F.7.2.1); the SCP assigns the UID when the SCU gave none."""
    state = association_state(event.assoc)
    state.requests += 1
    calling_aet = event.assoc.requestor.ae_title
    uid = event.request.AffectedSOPInstanceUID or generate_uid()
    attributes = event.attribute_list
    try:
        performed_step_create(sop_instance_uid=str(uid), ds=attributes, calling_ae_title=calling_aet,
                              charset_override=state.charset_override)
    except PerformedStepError as exc:
        state.failures += 1
        logger.warning("mpps n-create refused calling_aet=%s sop_instance_uid=%s status=0x%04X reason=%s",
                       calling_aet, uid, exc.dicom_status, exc.message)
        return _failure(exc, with_attributes=False), None
    if not event.request.AffectedSOPInstanceUID:
        attributes.AffectedSOPInstanceUID = uid  # pynetdicom moves it to the response primitive
    return SUCCESS, attributes


@uses_db
def handle_n_set(event) -> tuple:
    """Apply an MPPS modification list (PS3.4 F.7.2.2)."""
    state = association_state(event.assoc)
    state.requests += 1
    calling_aet = event.assoc.requestor.ae_title
    uid = str(event.request.RequestedSOPInstanceUID or "")
    changes = event.modification_list
    try:
        performed_step_update(sop_instance_uid=uid, ds=changes, calling_ae_title=calling_aet,
                              charset_override=state.charset_override)
    except PerformedStepError as exc:
        state.failures += 1
        logger.warning("mpps n-set refused calling_aet=%s sop_instance_uid=%s status=0x%04X reason=%s",
                       calling_aet, uid, exc.dicom_status, exc.message)
        return _failure(exc, with_attributes=True), None
    return SUCCESS, changes

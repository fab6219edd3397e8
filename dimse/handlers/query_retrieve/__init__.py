"""Query/Retrieve SCP: C-FIND, C-MOVE and C-GET, Patient Root and Study Root (PS3.4 C).

* :mod:`.find` - C-FIND (PS3.4 C.4.1) over :mod:`pacs.matching`.
* :mod:`.retrieve` - C-MOVE (C.4.2) to configured move destinations and C-GET
  (C.4.3) over the requestor's association, transcoding when the stored
  syntax was not accepted.
* :mod:`.request` - identifier parsing (character sets, levels, bad input) and
  the instances a retrieve covers.
* :mod:`.wire` - the hot messages (pending responses, C-STORE sub-operations)
  sent as ready-made PDUs instead of through pynetdicom's per-message path;
  :mod:`.encoding` - their encoders (command sets, identifiers, PDU framing).

Bad identifiers (no or unknown QueryRetrieveLevel, a key of a lower level, a
malformed value, no unique key for a retrieve) are answered 0xA900/0xC000
with an ErrorComment; the listener stays up.
"""

from __future__ import annotations

from django.conf import settings
from pynetdicom import _config, evt
from pynetdicom.presentation import StoragePresentationContexts
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from dimse.handlers.query_retrieve.find import handle_find
from dimse.handlers.query_retrieve.retrieve import handle_get, handle_move
from dimse.handlers.storage import STORAGE_TRANSFER_SYNTAXES

QR_TRANSFER_SYNTAXES = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.1.99",
                        "1.2.840.10008.1.2.2"]

__all__ = ["QR_TRANSFER_SYNTAXES", "configure", "handle_find", "handle_get", "handle_move"]


def configure(ae, listener) -> list:
    """Add the Q/R models and, for C-GET, every storage class in the SCP role; return the handlers."""
    for sop_class in (
        PatientRootQueryRetrieveInformationModelFind,
        StudyRootQueryRetrieveInformationModelFind,
        PatientRootQueryRetrieveInformationModelMove,
        StudyRootQueryRetrieveInformationModelMove,
        PatientRootQueryRetrieveInformationModelGet,
        StudyRootQueryRetrieveInformationModelGet,
    ):
        ae.add_supported_context(sop_class, QR_TRANSFER_SYNTAXES)
    for cx in StoragePresentationContexts:
        # C-GET: the requestor is the Storage SCP of the sub-operations (PS3.4 C.4.3).
        ae.add_supported_context(cx.abstract_syntax, STORAGE_TRANSFER_SYNTAXES, scu_role=False, scp_role=True)
    if not settings.PACS_DIMSE_DEBUG:
        # pynetdicom's standard handlers format every PDU and DIMSE message for
        # its DEBUG/INFO log even when that logger is at WARNING: a quarter of
        # the CPU of a C-GET (the A-ASSOCIATE-RQ of getscu's 120 storage roles,
        # each C-STORE-RSP), and a decode + pretty-print of each request identifier.
        # Process-wide; read when an association is created.
        _config.LOG_HANDLER_LEVEL = "none"
        _config.LOG_REQUEST_IDENTIFIERS = False
    return [(evt.EVT_C_FIND, handle_find), (evt.EVT_C_MOVE, handle_move), (evt.EVT_C_GET, handle_get)]

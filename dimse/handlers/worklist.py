"""Modality Worklist SCP: C-FIND on the Modality Worklist Information Model (PS3.4 K).

One pending response per matching Scheduled Procedure Step, carrying exactly
the requested keys in the character set the modality asked for.  MPPS
(N-CREATE/N-SET) shares this listener (see :mod:`dimse.handlers.mpps`).
"""

from __future__ import annotations

import logging
import time

from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.sop_class import ModalityWorklistInformationFind

from dimse.db import uses_db
from dimse.handlers import mpps
from dimse.server import association_state
from dimse.statuses import CANCEL, PENDING, PENDING_WARNING, SUCCESS
from pacs.matching import MatchingError
from worklist.dicom import query_parse, step_identifier
from worklist.selectors import worklist_step_find

logger = logging.getLogger(__name__)


def configure(ae, listener) -> list:
    """Modality Worklist FIND and MPPS on the worklist listener."""
    ae.add_supported_context(ModalityWorklistInformationFind)
    return [(evt.EVT_C_FIND, handle_find), *mpps.configure(ae, listener)]


def _failure(status: int, comment: str) -> Dataset:
    ds = Dataset()
    ds.Status = status
    ds.ErrorComment = comment[:64]
    return ds


@uses_db
def handle_find(event):
    """Answer a Modality Worklist C-FIND (PS3.4 K.4.1.3): pending matches, then success.

    Failure 0xA900 with an error comment for a QueryRetrieveLevel or a
    multi-item sequence, 0xC000 for a malformed value; 0xFF01 pendings when a
    key carrying a value cannot be matched; 0xFE00 on cancel.
    """
    state = association_state(event.assoc)
    state.requests += 1
    calling_aet = event.assoc.requestor.ae_title
    started = time.monotonic()
    try:
        query = query_parse(event.identifier, charset_override=state.charset_override)
        steps, unsupported = worklist_step_find(query)
    except MatchingError as exc:
        state.failures += 1
        logger.warning("mwl c-find refused calling_aet=%s status=0x%04X reason=%s",
                       calling_aet, exc.dicom_status, exc.message)
        yield _failure(exc.dicom_status, exc.message), None
        return
    pending = PENDING_WARNING if unsupported else PENDING
    matches = 0
    for step in steps.iterator(chunk_size=500):
        if event.is_cancelled:
            logger.info("mwl c-find cancelled calling_aet=%s matches=%d", calling_aet, matches)
            yield CANCEL, None
            return
        matches += 1
        yield pending, step_identifier(step, query)
    logger.info("mwl c-find calling_aet=%s matches=%d charset=%s unsupported=%s ms=%d", calling_aet, matches,
                "\\".join(query.charset.terms) or "default", ",".join(unsupported) or "-",
                (time.monotonic() - started) * 1000)
    yield SUCCESS, None

"""C-FIND SCP, Patient Root and Study Root (PS3.4 C.4.1).

Matching is :mod:`pacs.matching`; exactly the requested keys come back, with
computed attributes and SpecificCharacterSet ISO_IR 192.  A C-CANCEL ends it
with 0xFE00.  At most ``PACS_QR_MAX_RESULTS`` matches are sent, then the
final status is 0xB001 (response limit reached): never a silent cap.
Optional keys the index cannot match give 0xFF01 pendings.

Cost per C-FIND is a constant number of queries (one for the matches, one
more per 500 matches when SOPClassesInStudy is asked for) and, in little
endian contexts, a few microseconds per match: identifiers are encoded from
the index values and the pending responses written in batches by
:class:`~dimse.handlers.query_retrieve.wire.FindResponses` (86 matches:
~1 ms per match through pynetdicom's per-message path before).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from django.conf import settings
from pydicom.dataset import Dataset

from dimse.db import uses_db
from dimse.handlers.query_retrieve.request import identifier_parse, status_dataset
from dimse.handlers.query_retrieve.wire import FindResponses
from dimse.server import association_state
from dimse.statuses import (
    CANCEL,
    FIND_RESPONSE_LIMIT,
    PENDING,
    PENDING_WARNING,
    SUCCESS,
)
from pacs import matching
from pacs.matching import MatchingError

logger = logging.getLogger(__name__)


def find_rows(event, level: str, filters: dict[str, str], keywords: list[str], limit: int):
    """``[(tag, VR, value)]`` per match, at most *limit* + 1 of them (the extra one trips the limit warning).

    Raises
    ------
    MatchingError
        A key not allowed at *level*, a malformed value.
    """
    queryset = matching.level_queryset(level, filters)
    plan = matching.identifier_plan(level, tuple(keywords))
    return matching.identifier_rows(queryset[: limit + 1], plan, retrieve_aet=event.assoc.acceptor.ae_title)


@uses_db
def handle_find(event) -> Iterator[tuple[int | Dataset, Dataset | None]]:
    """C-FIND SCP (PS3.4 C.4.1): pending responses per match, then the final status.

    In implicit/explicit little endian contexts the pending responses are
    written by :class:`FindResponses` and only the final status is yielded to
    pynetdicom; otherwise each match is yielded as ``(pending, identifier)``.
    """
    started = time.perf_counter()
    state = association_state(event.assoc)
    state.requests += 1
    calling_aet = event.assoc.requestor.ae_title
    limit = settings.PACS_QR_MAX_RESULTS
    try:
        level, filters, keywords = identifier_parse(event.identifier, event.context.abstract_syntax,
                                                    state.charset_override)
        rows = find_rows(event, level, filters, keywords, limit)
        unsupported = [k for k in matching.unsupported_keys(level, filters) if filters.get(k)]
    except MatchingError as exc:
        state.failures += 1
        logger.warning("c-find refused calling_aet=%s status=0x%04X reason=%s", calling_aet, exc.dicom_status,
                       exc.message)
        yield status_dataset(exc.dicom_status, exc.message), None
        return
    pending = PENDING_WARNING if unsupported else PENDING
    responses = FindResponses(event, pending) if FindResponses.supported(event) else None
    matches = 0
    try:
        for items in rows:
            if event.is_cancelled:
                logger.info("c-find cancelled calling_aet=%s level=%s matches=%d", calling_aet, level, matches)
                if responses:
                    responses.flush()
                yield CANCEL, None
                return
            if matches == limit:
                logger.warning("c-find limit reached calling_aet=%s level=%s limit=%d", calling_aet, level, limit)
                if responses:
                    responses.flush()
                yield status_dataset(FIND_RESPONSE_LIMIT, f"More than {limit} matches: refine the query"), None
                return
            matches += 1
            if responses is None:
                yield pending, matching.identifier_dataset(items)
            elif event.assoc.is_established:
                responses.add(items)
            else:
                return  # peer gone: pynetdicom stops too
    except MatchingError as exc:  # a value only the database could reject
        state.failures += 1
        yield status_dataset(exc.dicom_status, exc.message), None
        return
    if responses:
        responses.flush()
    logger.info("c-find done calling_aet=%s level=%s matches=%d unsupported=%s ms=%.1f", calling_aet, level,
                matches, ",".join(unsupported) or "-", (time.perf_counter() - started) * 1000)
    yield SUCCESS, None

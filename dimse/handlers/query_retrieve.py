"""Query/Retrieve SCP: C-FIND, C-MOVE and C-GET, Patient Root and Study Root (PS3.4 C).

* C-FIND (PS3.4 C.4.1): matching is :mod:`pacs.matching`; exactly the requested
  keys come back, with computed attributes and SpecificCharacterSet ISO_IR 192.
  A C-CANCEL ends it with 0xFE00.  At most ``PACS_QR_MAX_RESULTS`` matches are
  sent, then the final status is 0xB001 (response limit reached): never a
  silent cap.  Optional keys the index cannot match give 0xFF01 pendings.
* C-MOVE (PS3.4 C.4.2): only to an enabled ``RemoteNode`` marked as move
  destination (else 0xA801).  Our association to it proposes, per SOP class,
  the stored syntaxes and uncompressed little endian; each sub-operation is
  sent as stored when accepted, else transcoded (:mod:`pacs.services.transcode`).
* C-GET (PS3.4 C.4.3): sub-operations go back over the same association in a
  storage context the requestor accepted in the SCP role, transcoded likewise.

Retrieval reads one file at a time from disk while iterating the matches with
``.iterator()``, so a large study never sits in memory.  Bad identifiers (no
or unknown QueryRetrieveLevel, a key of a lower level, a malformed value, no
unique key for a retrieve) are answered 0xA900/0xC000 with an ErrorComment.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Iterator

from django.conf import settings
from django.db import connections
from django.db.utils import InterfaceError, OperationalError
from pydicom import dcmread
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID
from pynetdicom import _config, build_context, evt
from pynetdicom.presentation import StoragePresentationContexts
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from dimse.handlers.storage import STORAGE_TRANSFER_SYNTAXES
from dimse.models import RemoteNode
from dimse.scu import tcp_nodelay
from dimse.server import association_state
from dimse.statuses import (
    CANCEL,
    FIND_RESPONSE_LIMIT,
    PENDING,
    PENDING_WARNING,
    SUCCESS,
)
from pacs import matching
from pacs.charsets import TextDecoder
from pacs.matching import MatchingError
from pacs.services.transcode import TranscodeError, instance_transcode, transfer_syntax_choose
from pacs.storage import absolute_path

logger = logging.getLogger(__name__)

QR_TRANSFER_SYNTAXES = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.1.99",
                        "1.2.840.10008.1.2.2"]
UNCOMPRESSED_LE = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"]
_STUDY_ROOT = {
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelGet,
}
_TEXT_VRS = {"LO", "SH", "LT", "ST", "UT", "UC"}
_MAX_CONTEXTS = 128  # PS3.8 9.3.2.2: presentation context IDs are odd numbers 1-255
# A transfer syntax no peer accepts: a sub-operation yielded with it fails inside
# pynetdicom, which then counts it failed and lists its SOP Instance UID.
_UNSENDABLE_TS = "1.2.826.0.1.3680043.9.7433.0.0.1"


def configure(ae, listener) -> list:
    """Add the Q/R models and, for C-GET, every storage class in the SCP role."""
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
    contexts_share_uids(ae)
    # Sub-operations sent as stored go from file to socket undecoded (stream_from_files).
    # Process-wide: any send_c_store(path) must then match an accepted syntax exactly.
    _config.STORE_SEND_CHUNKED_DATASET = True
    return [(evt.EVT_C_FIND, handle_find), (evt.EVT_C_MOVE, handle_move), (evt.EVT_C_GET, handle_get)]


class _SharedUID(UID):
    """A UID that ``deepcopy`` shares instead of rebuilding (a ``str``: immutable)."""

    def __deepcopy__(self, memo) -> _SharedUID:
        return self

    def __copy__(self) -> _SharedUID:
        return self


class _SyntaxList(list):
    """A transfer syntax list whose deep copy is a plain copy (its items are immutable)."""

    def __deepcopy__(self, memo) -> _SyntaxList:
        return _SyntaxList(self)


def contexts_share_uids(ae) -> None:
    """Make the per-association copy of *ae*'s supported contexts cheap.

    pynetdicom deep-copies every supported context for each new association;
    rebuilding (and regex-validating) the ~3,000 UIDs of 120 storage classes x
    25 syntaxes cost ~120 ms of CPU per association (profiled: C-ECHO/C-FIND
    round trips of 150-200 ms).  Sharing the immutable UIDs and copying the
    syntax lists flat brings it to ~1 ms.
    """
    for cx in ae.supported_contexts:
        cx._abstract_syntax = _SharedUID(cx._abstract_syntax)
        cx._transfer_syntax = _SyntaxList(_SharedUID(ts) for ts in cx._transfer_syntax)


def _db_generator(func):
    """``uses_db`` for generator handlers: drop a broken connection so the next request reconnects."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            yield from func(*args, **kwargs)
        except (OperationalError, InterfaceError):
            connections.close_all()
            raise

    return wrapper


def _status(code: int, comment: str = "") -> Dataset:
    ds = Dataset()
    ds.Status = code
    if comment:
        ds.ErrorComment = comment[:64]
    return ds


def _element_text(elem) -> str:
    value = elem.value
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or value.__class__.__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    return str(value)


def identifier_parse(identifier: Dataset, model: str, charset_override: str = "") -> tuple[
        str, dict[str, str], list[str]]:
    """``(level, filters, requested keywords)`` of a Q/R request identifier.

    Text and person names are decoded like stored data (:mod:`pacs.charsets`):
    the declared SpecificCharacterSet, the calling node's charset override, and
    GBK/GB18030 bytes sent under a Latin-1 or missing declaration.

    Raises
    ------
    MatchingError
        Missing/unknown level, PATIENT level in Study Root, undecodable values.
    """
    try:
        decoder = TextDecoder.for_dataset(identifier, charset_override)
        level = matching.level_check(identifier.get("QueryRetrieveLevel", ""))
        filters: dict[str, str] = {}
        keywords: list[str] = []
        for tag in list(identifier.keys()):
            if tag.group in (0x0000, 0x0002) or tag.is_private:
                continue
            keyword = keyword_for_tag(tag)
            if not keyword:
                continue
            # Raw element first: text is decoded here, not by pydicom's declared-charset path.
            vr = identifier.get_item(tag).VR or dictionary_VR(tag).split(" or ")[0]
            keywords.append(keyword)
            if vr == "PN":
                filters[keyword] = decoder.person_name(identifier, tag).full
            elif vr in _TEXT_VRS:
                filters[keyword] = decoder.text(identifier, tag)
            elif vr != "SQ":
                filters[keyword] = _element_text(identifier[tag])
    except MatchingError:
        raise
    except Exception as exc:  # pydicom decodes lazily: bad VR/values surface here
        raise MatchingError(f"Cannot decode identifier: {exc}", dicom_status=0xC000) from exc
    if model in _STUDY_ROOT and level == matching.PATIENT:
        raise MatchingError("PATIENT level is not part of the Study Root model")
    return level, filters, keywords


# --- C-FIND -----------------------------------------------------------------------------


@_db_generator
def handle_find(event) -> Iterator[tuple[int | Dataset, Dataset | None]]:
    """C-FIND SCP (PS3.4 C.4.1): yield (pending, identifier) per match, then the final status."""
    started = time.perf_counter()
    state = association_state(event.assoc)
    state.requests += 1
    calling_aet = event.assoc.requestor.ae_title
    try:
        level, filters, keywords = identifier_parse(
            event.identifier, event.context.abstract_syntax, association_state(event.assoc).charset_override)
        queryset = matching.level_queryset(level, filters)
        unsupported = [k for k in matching.unsupported_keys(level, filters) if filters.get(k)]
    except MatchingError as exc:
        state.failures += 1
        logger.warning("c-find refused calling_aet=%s status=0x%04X reason=%s", calling_aet, exc.dicom_status,
                       exc.message)
        yield _status(exc.dicom_status, exc.message), None
        return
    pending = PENDING_WARNING if unsupported else PENDING
    limit = settings.PACS_QR_MAX_RESULTS
    retrieve_aet = event.assoc.acceptor.ae_title
    matches = 0
    previous_delay = _reactor_fast(event.assoc)
    try:
        for obj in queryset[: limit + 1].iterator(chunk_size=500):
            if event.is_cancelled:
                logger.info("c-find cancelled calling_aet=%s level=%s matches=%d", calling_aet, level, matches)
                yield CANCEL, None
                return
            if matches == limit:
                logger.warning("c-find limit reached calling_aet=%s level=%s limit=%d", calling_aet, level, limit)
                yield _status(FIND_RESPONSE_LIMIT, f"More than {limit} matches: refine the query"), None
                return
            matches += 1
            yield pending, matching.level_identifier(obj, level, keywords, retrieve_aet=retrieve_aet)
    except MatchingError as exc:  # a value only the database could reject
        state.failures += 1
        yield _status(exc.dicom_status, exc.message), None
        return
    finally:
        event.assoc.dul._run_loop_delay = previous_delay
    logger.info("c-find done calling_aet=%s level=%s matches=%d unsupported=%s ms=%.1f", calling_aet, level,
                matches, ",".join(unsupported) or "-", (time.perf_counter() - started) * 1000)
    yield SUCCESS, None


# --- Retrieval (shared by C-MOVE and C-GET) ----------------------------------------------


def retrieve_instances(level: str, filters: dict[str, str]):
    """Instances to retrieve for a C-MOVE/C-GET identifier (PS3.4 C.4.2.2.1).

    The unique key of *level* must be given (a UID list is fine): an empty key
    would retrieve the whole archive.

    Raises
    ------
    MatchingError
        No unique key, a key not allowed at *level*, a malformed value.
    """
    unique = matching.UNIQUE_KEYS[level]
    value = (filters.get(unique) or "").strip()
    if not value or set(value) <= {"*", "?"}:
        raise MatchingError(f"A {level} level retrieve needs {unique}")
    matching.level_queryset(level, filters)  # validates keys against the requested level
    return (
        matching.level_queryset(matching.IMAGE, filters)
        .select_related(None)
        .order_by("series_id", "instance_number", "id")
    )


def _unsendable(sop_class_uid: str, sop_instance_uid: str) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = sop_instance_uid
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID(_UNSENDABLE_TS)
    return ds


def _accepted_by_class(contexts) -> dict[str, list[str]]:
    accepted: dict[str, list[str]] = {}
    for cx in contexts:
        if cx.as_scu:
            accepted.setdefault(str(cx.abstract_syntax), []).append(str(cx.transfer_syntax[0]))
    return accepted


class _StoredFile(Dataset):
    """Stands for an archived file sent as stored: only what pynetdicom inspects, plus the path.

    :func:`stream_from_files` makes the association send the file itself, so
    its bytes go from disk to socket in PDU-sized chunks, never decoded.
    """


def _stored_file(row: dict, path) -> Dataset:
    ds = _StoredFile()
    ds.SOPClassUID = row["sop_class_uid"]
    ds.SOPInstanceUID = row["sop_instance_uid"]
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID(row["transfer_syntax_uid"])
    ds._pacs_path = path
    return ds


def stream_from_files(assoc) -> None:
    """Send :class:`_StoredFile` placeholders on *assoc* straight from their files.

    pynetdicom's C-GET/C-MOVE code only accepts ``Dataset`` yields and would
    decode and re-encode each one; its chunked file mode
    (``STORE_SEND_CHUNKED_DATASET``, enabled in :func:`configure`) sends the
    stored bytes as they are when given a path.
    """
    if getattr(assoc, "_pacs_streaming", False):
        return
    original = assoc.send_c_store

    def send_c_store(dataset, *args, **kwargs):
        path = getattr(dataset, "_pacs_path", None) if isinstance(dataset, _StoredFile) else None
        return original(path if path is not None else dataset, *args, **kwargs)

    assoc.send_c_store = send_c_store
    assoc._pacs_streaming = True


# pynetdicom's reactor sleeps 1 ms whenever it finds nothing to do, so every
# C-STORE-RSP (and every C-FIND pending response) waits for the next poll:
# 90 -> 150 instances/s for a 100 x 512 KiB C-GET with 0.2 ms (measured on 2
# loaded cores).  Only while a request runs: an idle association polling that
# fast would waste CPU.
_BUSY_LOOP_DELAY = 0.0002


def _reactor_fast(assoc) -> float:
    previous = assoc.dul._run_loop_delay
    assoc.dul._run_loop_delay = _BUSY_LOOP_DELAY
    return previous


def suboperation_dataset(row: dict, accepted: dict[str, list[str]], preferred: str = "") -> Dataset:
    """The dataset to C-STORE for one matched instance: the stored file, or a transcoded copy.

    A dataset that cannot be produced (file missing, no acceptable syntax,
    codec failure) is replaced by one no peer accepts, so pynetdicom counts
    the sub-operation as failed and lists its SOP Instance UID.
    """
    sop_class, sop_instance = row["sop_class_uid"], row["sop_instance_uid"]
    stored = row["transfer_syntax_uid"]
    target = transfer_syntax_choose(stored, accepted.get(sop_class, []), preferred=preferred,
                                    has_pixels=row["rows"] is not None)
    if target is None:
        logger.warning("retrieve no acceptable transfer syntax sop_instance_uid=%s stored=%s", sop_instance, stored)
        return _unsendable(sop_class, sop_instance)
    try:
        path = absolute_path(row["file_path"])
        if target == stored:
            if not path.is_file():
                raise FileNotFoundError(f"archived file missing: {row['file_path']}")
            return _stored_file(row, path)
        return instance_transcode(dcmread(path), target)
    except (OSError, TranscodeError, MatchingError) as exc:
        logger.warning("retrieve unreadable sop_instance_uid=%s reason=%s", sop_instance, exc)
        return _unsendable(sop_class, sop_instance)


_ROW_FIELDS = ("sop_class_uid", "sop_instance_uid", "transfer_syntax_uid", "file_path", "rows")


def _retrieve_parse(event) -> tuple[str, dict[str, str]]:
    level, filters, _ = identifier_parse(
            event.identifier, event.context.abstract_syntax, association_state(event.assoc).charset_override)
    return level, filters


# --- C-MOVE -----------------------------------------------------------------------------


def _destination_contexts(instances, preferred: str) -> list:
    """Presentation contexts for the move destination: stored syntaxes + uncompressed, per SOP class."""
    pairs = instances.order_by().values_list("sop_class_uid", "transfer_syntax_uid").distinct()
    by_class: dict[str, set[str]] = {}
    for sop_class, ts in pairs:
        by_class.setdefault(sop_class, set()).add(ts)
    # One context per syntax: an acceptor picks one syntax per context, often its own first choice.
    wanted = {preferred} - set(UNCOMPRESSED_LE) if preferred else set()
    contexts, extra = [], []
    for sop_class in sorted(by_class):
        contexts.append(build_context(sop_class, UNCOMPRESSED_LE))
        for ts in sorted((by_class[sop_class] | wanted) - set(UNCOMPRESSED_LE)):
            extra.append(build_context(sop_class, [ts]))
    return (contexts + extra)[:_MAX_CONTEXTS]


class _StoreAssociation:
    """Captures the association pynetdicom opens to the move destination."""

    def __init__(self) -> None:
        self.assoc = None
        self.ready = threading.Event()

    def capture(self, event) -> None:
        stream_from_files(event.assoc)
        _reactor_fast(event.assoc)  # this association lives only for the move
        self.assoc = event.assoc
        self.ready.set()

    def accepted(self) -> dict[str, list[str]]:
        if self.assoc is None:
            return {}
        return _accepted_by_class(self.assoc.accepted_contexts)

    def alive(self) -> bool:
        return self.assoc is not None and self.assoc.is_established


@_db_generator
def handle_move(event):
    """C-MOVE SCP (PS3.4 C.4.2): destination, sub-operation count, then (pending, dataset) pairs."""
    started = time.perf_counter()
    state = association_state(event.assoc)
    state.requests += 1
    calling_aet = event.assoc.requestor.ae_title
    destination_aet = str(event.move_destination or "").strip()
    node = RemoteNode.objects.filter(ae_title=destination_aet, enabled=True, is_move_destination=True).first()
    if node is None:
        state.failures += 1
        logger.warning("c-move refused calling_aet=%s destination=%s reason=unknown-destination", calling_aet,
                       destination_aet)
        yield None, None
        return
    store = _StoreAssociation()
    try:
        level, filters = _retrieve_parse(event)
        instances = retrieve_instances(level, filters)
        total = instances.count()
        contexts = _destination_contexts(instances, node.preferred_transfer_syntax) if total else []
    except MatchingError as exc:
        state.failures += 1
        logger.warning("c-move refused calling_aet=%s status=0x%04X reason=%s", calling_aet, exc.dicom_status,
                       exc.message)
        # pynetdicom needs destination and count before any status: one failed sub-operation.
        yield node.host, node.port, {"contexts": [build_context("1.2.840.10008.1.1")]}
        yield 1
        yield _status(exc.dicom_status, exc.message), None
        return
    yield node.host, node.port, {
        "contexts": contexts,
        "max_pdu": settings.PACS_MAX_PDU,
        "evt_handlers": [(evt.EVT_CONN_OPEN, tcp_nodelay), (evt.EVT_ACCEPTED, store.capture)],
    }
    yield total
    logger.info("c-move start calling_aet=%s destination=%s level=%s instances=%d", calling_aet, destination_aet,
                level, total)
    accepted = store.accepted()
    sent = 0
    for row in instances.values(*_ROW_FIELDS).iterator(chunk_size=200):
        if event.is_cancelled:
            logger.info("c-move cancelled calling_aet=%s destination=%s sent=%d", calling_aet, destination_aet, sent)
            yield CANCEL, None
            return
        if not store.alive():
            # Destination gone: the rest fail fast, without reading files.
            yield PENDING, _unsendable(row["sop_class_uid"], row["sop_instance_uid"])
            continue
        sent += 1
        yield PENDING, suboperation_dataset(row, accepted, node.preferred_transfer_syntax)
    logger.info("c-move done calling_aet=%s destination=%s instances=%d ms=%.1f", calling_aet, destination_aet,
                total, (time.perf_counter() - started) * 1000)


# --- C-GET ------------------------------------------------------------------------------


@_db_generator
def handle_get(event):
    """C-GET SCP (PS3.4 C.4.3): sub-operation count, then (pending, dataset) pairs."""
    started = time.perf_counter()
    state = association_state(event.assoc)
    state.requests += 1
    calling_aet = event.assoc.requestor.ae_title
    try:
        level, filters = _retrieve_parse(event)
        instances = retrieve_instances(level, filters)
        total = instances.count()
    except MatchingError as exc:
        state.failures += 1
        logger.warning("c-get refused calling_aet=%s status=0x%04X reason=%s", calling_aet, exc.dicom_status,
                       exc.message)
        yield 1
        yield _status(exc.dicom_status, exc.message), None
        return
    yield total
    stream_from_files(event.assoc)
    accepted = _accepted_by_class(event.assoc.accepted_contexts)
    logger.info("c-get start calling_aet=%s level=%s instances=%d", calling_aet, level, total)
    previous_delay = _reactor_fast(event.assoc)
    try:
        for row in instances.values(*_ROW_FIELDS).iterator(chunk_size=200):
            if event.is_cancelled:
                logger.info("c-get cancelled calling_aet=%s", calling_aet)
                yield CANCEL, None
                return
            yield PENDING, suboperation_dataset(row, accepted)
    finally:
        event.assoc.dul._run_loop_delay = previous_delay
    logger.info("c-get done calling_aet=%s instances=%d ms=%.1f", calling_aet, total,
                (time.perf_counter() - started) * 1000)



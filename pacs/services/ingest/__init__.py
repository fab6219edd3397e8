"""Ingest: the one write path from received DICOM bytes to archive + index.

``instance_ingest`` is shared by C-STORE, STOW-RS, ``importdicom``, web upload,
print composition and retrieval.  Order of work (all or nothing):

1. parse only the header (``stop_before_pixels`` + ``specific_tags``) and check
   the pixel data element is complete;
2. validate the required attributes and UIDs (a UID never reaches a path
   unchecked) and apply the duplicate policy;
3. check free space, write the received bytes unchanged to a temp file on the
   archive volume, fsync, rename into place;
4. fsync the directory, upsert Patient -> Study -> Series -> Instance and the
   denormalised counts in one transaction - both shared with the instances
   other associations finish at the same moment (:mod:`.commit`); if it fails,
   the new file is removed again.

So a caller that gets an ``IngestResult`` back may answer Success: file and row
are both durable.  Errors are :mod:`pacs.exceptions` carrying a DICOM status.
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import Future
from pathlib import Path

from django.db import IntegrityError

from pacs import storage
from pacs.charsets import TextDecoder
from pacs.choices import Compression, DuplicatePolicy, IngestStatus
from pacs.exceptions import DuplicateRejected, OutOfResources, PacsError, ProcessingFailure
from pacs.services.config import archive_config_get
from pacs.services.ingest.commit import CommitNotDurable, group_commit
from pacs.services.ingest.index import index_upsert, instance_existing
from pacs.services.ingest.parse import (
    UNCOMPRESSED_SYNTAXES,
    attributes_extract,
    header_read,
)
from pacs.services.ingest.records import Header, IngestOrigin, IngestResult, SpooledFile

__all__ = ["IngestOrigin", "IngestResult", "SpooledFile", "instance_ingest"]

logger = logging.getLogger(__name__)


def instance_ingest(
    *, source: bytes | bytearray | memoryview | str | Path | SpooledFile, origin: IngestOrigin | None = None
) -> IngestResult:
    """Archive one DICOM instance and index it.

    Parameters
    ----------
    source
        The Part 10 file bytes (C-STORE's ``event.encoded_dataset()``, a STOW-RS
        part), the path of a file (import, copied) or a :class:`SpooledFile`
        (a large C-STORE data set already written to the archive volume: moved,
        not copied).  A dataset without preamble and file meta is accepted and
        given a file meta header.
    origin
        Who sent it; used for the series source AE/address and the charset override.

    Returns
    -------
    IngestResult
        ``status`` is ``stored``, ``replaced`` or ``duplicate`` (keep-first policy).

    Raises
    ------
    CannotUnderstand
        0xC000: not DICOM, corrupt or truncated.
    DatasetMismatch / InvalidUID
        0xA900: a required attribute is missing or a UID is invalid.
    DuplicateRejected
        0x0111: the SOP Instance UID is archived and the policy is ``reject``.
    OutOfResources
        0xA700: free space below the configured floor.
    ProcessingFailure
        0x0110: the file system or database failed; nothing was left behind.
    """
    origin = origin or IngestOrigin()
    started = time.perf_counter()
    spooled = source if isinstance(source, SpooledFile) else None
    if spooled is not None:
        source = spooled.path
    config = archive_config_get()
    pending = _write_early(source, config.min_free_mb)
    try:
        header = header_read(source)
        attrs = attributes_extract(header.ds, TextDecoder.for_dataset(header.ds, origin.charset_override))
        sop_instance_uid = attrs["sop_instance_uid"]
        existing = instance_existing(sop_instance_uid)
        if existing and config.duplicate_policy == DuplicatePolicy.KEEP_FIRST:
            logger.info("ingest duplicate kept-first sop_instance_uid=%s source=%s", sop_instance_uid, origin.source)
            if pending is not None:
                storage.temp_discard(pending)
            return _result(IngestStatus.DUPLICATE, existing["id"], attrs, header, existing["file_size"])
        if existing and config.duplicate_policy == DuplicatePolicy.REJECT:
            raise DuplicateRejected(f"SOP Instance {sop_instance_uid} is already archived (duplicate policy: reject)")
        if pending is None:  # else checked by _write_early a moment ago
            storage.free_space_check(config.min_free_mb)
        relative = storage.relative_path_build(
            config.path_template,
            {
                "PatientID": attrs["patient"]["patient_id"],
                "StudyInstanceUID": attrs["study_instance_uid"],
                "StudyDate": header.ds.get("StudyDate", "") or "",
                "SeriesInstanceUID": attrs["series_instance_uid"],
                "Modality": attrs["series"]["modality"],
                "SOPInstanceUID": sop_instance_uid,
            },
        )
        final = storage.absolute_path(relative)
    except BaseException:
        if pending is not None:
            storage.temp_discard(pending)
        raise
    try:
        if pending is not None:
            checksum = storage.checksum(source)  # while the worker writes and fsyncs
            temp = pending.result()
        elif spooled is not None:
            temp, checksum = spooled.path, spooled.checksum
        elif header.data is not None:
            temp, checksum = storage.temp_write(header.data)
        else:
            temp, checksum, _ = storage.temp_copy(header.path)
    except OSError as exc:
        raise ProcessingFailure(f"Cannot write to the archive: {exc.strerror or exc}") from exc

    # Keep a replaced file aside until the new row is committed.
    backup = None
    preexisting = final.exists()
    try:
        if existing and preexisting:
            backup = final.with_name(final.name + ".replaced")
            os.replace(final, backup)
        _, directories = storage.file_place(temp, relative)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        if backup:
            os.replace(backup, final)
        raise ProcessingFailure(f"Cannot write to the archive: {exc.strerror or exc}") from exc

    try:
        instance_id = group_commit.run(directories, lambda: index_upsert(
            attrs=attrs,
            header=header,
            relative=relative,
            checksum=checksum,
            origin=origin,
            update_attributes=config.update_attributes,
            replace_id=existing["id"] if existing else None,
        ))
    except CommitNotDurable as exc:
        # Row and file are both in place and match: only their durability is in doubt.
        logger.error("ingest index flush failed sop_instance_uid=%s error=%s", sop_instance_uid, exc)
        raise ProcessingFailure(str(exc)) from exc
    except IntegrityError:
        # Lost a race with another association storing the same SOP Instance:
        # the file at this path is that instance, so it stays.
        again = instance_existing(sop_instance_uid)
        if again and config.duplicate_policy == DuplicatePolicy.KEEP_FIRST:
            return _result(IngestStatus.DUPLICATE, again["id"], attrs, header, again["file_size"])
        if again and config.duplicate_policy == DuplicatePolicy.REJECT:
            raise DuplicateRejected(f"SOP Instance {sop_instance_uid} is already archived") from None
        _undo(final, backup, preexisting)
        raise ProcessingFailure(f"Index conflict storing {sop_instance_uid}") from None
    except PacsError:
        _undo(final, backup, preexisting)
        raise
    except OSError as exc:  # the directory fsync
        _undo(final, backup, preexisting)
        raise ProcessingFailure(f"Cannot write to the archive: {exc.strerror or exc}") from exc
    except Exception as exc:
        _undo(final, backup, preexisting)
        logger.exception("ingest index failure sop_instance_uid=%s", sop_instance_uid)
        raise ProcessingFailure(f"Index update failed: {exc.__class__.__name__}") from exc

    if backup:
        backup.unlink(missing_ok=True)
    if existing and existing["file_path"] != relative:
        storage.file_remove(storage.absolute_path(existing["file_path"]))

    status = IngestStatus.REPLACED if existing else IngestStatus.STORED
    logger.info(
        "ingest %s sop_instance_uid=%s study_instance_uid=%s source=%s calling_aet=%s bytes=%d ms=%.1f",
        status,
        sop_instance_uid,
        attrs["study_instance_uid"],
        origin.source,
        origin.calling_aet,
        header.size,
        (time.perf_counter() - started) * 1000,
    )
    if config.compression != Compression.NONE and header.transfer_syntax_uid in UNCOMPRESSED_SYNTAXES:
        from pacs.tasks import compression_enqueue

        compression_enqueue(instance_id)
    return _result(status, instance_id, attrs, header, header.size)


def _write_early(source: bytes | bytearray | memoryview | str | Path, min_free_mb: int) -> Future | None:
    """Start writing received Part 10 bytes to a temp file while the header is parsed.

    The bytes are archived unchanged, so the write does not depend on the parse:
    a worker writes and fsyncs while this thread parses, checks for a duplicate
    and computes the checksum, which takes the disk's latency off the critical path
    of a C-STORE round trip.  Bare datasets (re-encoded after parsing), files (copied)
    and a volume below its floor (refused after the duplicate check) go the
    sequential way.
    """
    if isinstance(source, (str, Path)) or bytes(source[128:132]) != b"DICM":
        return None
    try:
        storage.free_space_check(min_free_mb)
    except OutOfResources:
        return None
    return storage.temp_write_background(source)


def _undo(final: Path, backup: Path | None, preexisting: bool) -> None:
    if backup:
        os.replace(backup, final)
    elif not preexisting:
        storage.file_remove(final)


def _result(status: str, instance_id: int, attrs: dict, header: Header, size: int) -> IngestResult:
    return IngestResult(
        status=status,
        instance_id=instance_id,
        sop_class_uid=attrs["sop_class_uid"],
        sop_instance_uid=attrs["sop_instance_uid"],
        study_instance_uid=attrs["study_instance_uid"],
        series_instance_uid=attrs["series_instance_uid"],
        transfer_syntax_uid=header.transfer_syntax_uid,
        file_size=size,
    )

"""Print jobs out of the archive: film preview thumbnails, the job as a zip, the received image boxes described.

Read-only towards the database; the only files written are thumbnail caches
in the job's own ``films/`` folder (removed with the job, like the previews).
"""

from __future__ import annotations

import io
import json
import logging
import zipfile
from typing import BinaryIO

from PIL import Image
from pydicom import dcmread

from pacs.storage import absolute_path as archive_path
from printing.models import Film, PrintJob
from printing.services import files

logger = logging.getLogger(__name__)

THUMBNAIL_SIZES = (160, 320, 640)


def film_thumbnail(*, film: Film, size: int) -> bytes:
    """The film preview scaled to fit *size* x *size* pixels (PNG), cached next to the preview.

    Parameters
    ----------
    size
        One of :data:`THUMBNAIL_SIZES` (a closed set keeps the cache bounded).

    Raises
    ------
    ValueError
        A size not offered.
    OSError
        The film preview is missing.
    """
    if size not in THUMBNAIL_SIZES:
        raise ValueError(f"thumbnail size must be one of {THUMBNAIL_SIZES}")
    relative = film.preview_file.removesuffix(".png") + f".thumb-{size}.png"
    cached = files.absolute_path(relative)
    if cached.is_file():
        return cached.read_bytes()
    with Image.open(files.absolute_path(film.preview_file)) as image:
        image.thumbnail((size, size), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
    data = buffer.getvalue()
    try:
        files.file_write(relative, data)
    except OSError as exc:  # a read-only print folder still answers, uncached
        logger.warning("film thumbnail not cached print_job=%s film=%s error=%s", film.print_job_id,
                       film.film_number, exc)
    return data


def film_image_boxes_describe(*, film: Film) -> list[dict]:
    """The image boxes of a printed film with what was received for each (header of the kept pixels).

    Returns one dict per image box position: ``position``, ``sop_class_uid``,
    ``attributes`` (DICOM JSON), ``received`` and, when received, ``rows``,
    ``columns``, ``bits_stored``, ``photometric_interpretation``.
    """
    described = []
    for snapshot in film.image_boxes:
        row = {"position": snapshot["position"], "sop_class_uid": snapshot["sop_class_uid"],
               "attributes": snapshot.get("attributes") or {}, "received": bool(snapshot.get("pixel_file"))}
        if row["received"]:
            try:
                ds = dcmread(files.absolute_path(snapshot["pixel_file"]), force=True, stop_before_pixels=True)
            except (OSError, ValueError):
                row["missing"] = True
            else:
                row.update(rows=ds.get("Rows"), columns=ds.get("Columns"), bits_stored=ds.get("BitsStored"),
                           photometric_interpretation=ds.get("PhotometricInterpretation", ""))
        described.append(row)
    return sorted(described, key=lambda r: r["position"])


def _job_record(job: PrintJob, films: list[Film]) -> dict:
    return {
        "id": job.pk,
        "film_session_uid": job.film_session_uid,
        "meta_sop_class_uid": job.meta_sop_class_uid,
        "calling_aet": job.calling_aet,
        "called_aet": job.called_aet,
        "peer_address": job.peer_address,
        "status": job.status,
        "failure_reason": job.failure_reason,
        "errors": job.errors,
        "created_at": job.created_at.isoformat(),
        "printed_at": job.printed_at.isoformat() if job.printed_at else None,
        "session_closed_at": job.session_closed_at.isoformat() if job.session_closed_at else None,
        "study_instance_uid": job.study_instance_uid,
        "film_session": job.attributes,
        "films": [
            {
                "film_number": film.film_number,
                "image_display_format": film.image_display_format,
                "film_size_id": film.film_size_id,
                "film_orientation": film.film_orientation,
                "rows": film.rows,
                "columns": film.columns,
                "sop_instance_uid": film.sop_instance_uid,
                "print_job_sop_instance_uid": film.print_job_sop_instance_uid,
                "film_box": film.film_box,
                "image_boxes": film.image_boxes,
                "presentation_lut": film.presentation_lut,
                "annotations": film.annotations,
            }
            for film in films
        ],
    }


def print_job_zip(*, job: PrintJob, films: list[Film], target: BinaryIO) -> list[str]:
    """Write the print job as a zip to *target*: per film its PNG preview and archived DICOM film, plus JSON.

    ``print-job.json`` holds the job record with the film session, film box and
    image box attributes as received (DICOM JSON).  A film whose preview or
    archived instance has gone is skipped and named in the returned list.

    Returns
    -------
    list[str]
        Members that could not be added.
    """
    missing: list[str] = []
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("print-job.json", json.dumps(_job_record(job, films), indent=2, ensure_ascii=False))
        for film in films:
            stem = f"film-{film.film_number}"
            try:
                archive.write(files.absolute_path(film.preview_file), f"{stem}.png")
            except (OSError, ValueError):
                missing.append(f"{stem}.png")
            instance = film.instance
            try:
                if instance is None:
                    raise FileNotFoundError(film.sop_instance_uid)
                archive.write(archive_path(instance.file_path), f"{stem}.dcm")
            except (OSError, ValueError):
                missing.append(f"{stem}.dcm")
    logger.info("print job zipped print_job=%s films=%d missing=%d", job.pk, len(films), len(missing))
    return missing

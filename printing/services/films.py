"""Printing (N-ACTION): compose film boxes into films, archive them, answer Print Job status.

On a film box or film session N-ACTION each film box is composed into one
image at the film size and orientation (``PACS_PRINT_DPI``), stored in the
archive as a Secondary Capture instance through ``instance_ingest`` (so it is
queryable and viewable like any study), written as a PNG preview, and
recorded as a ``Film`` with a snapshot of the film box and image boxes so it
can be forwarded later with its original layout (PS3.4 H.4.1.2.3, H.4.2.2.3).
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from PIL import Image
from pydicom import dcmread, dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import Tag
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from pacs.exceptions import PacsError
from pacs.services.ingest import IngestOrigin, instance_ingest
from printing.choices import PrintJobStatus
from printing.exceptions import NoFilmBoxes, NoSuchObjectInstance, PrintError, PrintProcessingFailure
from printing.models import AnnotationBox, Film, FilmBox, ImageBox, PrintJob
from printing.services import composition, files
from printing.services.context import (
    PRINT_JOB,
    PrintContext,
    dataset_from_json,
    film_box_get,
    records_failure,
    session_check,
)
from printing.services.print_jobs import print_job_fail, print_job_printed, print_job_status_set
from printing.services.printer import PRINTER_NAME
from printing.services.sessions import film_box_effective

logger = logging.getLogger(__name__)

ANNOTATION_DISPLAY_FORMAT_ID_TAG = "20100030"  # key of Annotation Display Format ID in DICOM JSON
EMPTY_FILM_BOX = 0xB603  # Warning: Film Box hierarchy does not contain Image Box SOP instances (empty page)
EMPTY_FILM_SESSION = 0xB602  # Warning: Film Session hierarchy has no Image Box SOP instances (empty page)


@dataclass
class PrintResult:
    """Outcome of an N-ACTION print: the Print Job SOP instance and the films made."""

    print_job_sop_instance_uid: str
    films: list[Film] = field(default_factory=list)
    warning: int | None = None

    def action_reply(self) -> Dataset:
        """N-ACTION reply: Referenced Print Job Sequence (PS3.4 H.4.2.2.3)."""
        reference = Dataset()
        reference.ReferencedSOPClassUID = PRINT_JOB
        reference.ReferencedSOPInstanceUID = self.print_job_sop_instance_uid
        reply = Dataset()
        reply.ReferencedPrintJobSequence = [reference]
        return reply


@records_failure
def film_box_print(*, context: PrintContext, sop_instance_uid: str) -> PrintResult:
    """N-ACTION Print of one Basic Film Box (PS3.4 H.4.2.2.3).

    Raises
    ------
    NoSuchObjectInstance
        0x0112: the film box does not exist (or its session was deleted).
    PrintProcessingFailure
        0x0110: the film could not be composed or archived.
    """
    box = film_box_get(context, sop_instance_uid)
    return _print(context, [box], EMPTY_FILM_BOX)


@records_failure
def film_session_print(*, context: PrintContext, sop_instance_uid: str) -> PrintResult:
    """N-ACTION Print of a Basic Film Session: every film box, in creation order (PS3.4 H.4.1.2.3).

    Raises
    ------
    NoFilmBoxes
        0xC600: the session has no film box.
    """
    job = session_check(context, sop_instance_uid)
    boxes = list(FilmBox.objects.filter(print_job=job).order_by("id"))
    if not boxes:
        raise NoFilmBoxes("Film Session has no Film Box to print")
    return _print(context, boxes, EMPTY_FILM_SESSION)


def _print(context: PrintContext, boxes: list[FilmBox], empty_warning: int) -> PrintResult:
    job_id = context.job_id
    print_job_status_set(job_id=job_id, status=PrintJobStatus.PRINTING)
    result = PrintResult(print_job_sop_instance_uid=generate_uid())
    image_boxes: dict[int, list[ImageBox]] = {box.pk: [] for box in boxes}
    for image_box in ImageBox.objects.filter(film_box__in=boxes).order_by("image_box_position"):
        image_boxes[image_box.film_box_id].append(image_box)
    if not any(ib.pixel_file for boxes_ in image_boxes.values() for ib in boxes_):
        result.warning = empty_warning
    try:
        job = _archive_uids(job_id)
        number = Film.objects.filter(print_job_id=job_id).count()
        for box in boxes:
            number += 1
            result.films.append(
                _film_make(context, job, box, image_boxes[box.pk], number, result.print_job_sop_instance_uid)
            )
    except Exception as exc:
        if result.films:  # films made before the failure are kept and counted
            print_job_printed(job_id=job_id, films=result.films, complete=False)
        if isinstance(exc, PrintError):
            raise
        if isinstance(exc, PacsError):
            raise PrintProcessingFailure(f"Film could not be archived: {exc.message}") from exc
        print_job_fail(job_id=job_id, reason=f"Film composition failed: {exc.__class__.__name__}: {exc}")
        raise
    print_job_printed(job_id=job_id, films=result.films)
    logger.info(
        "printed print_job=%s films=%d print_job_uid=%s", job_id, len(result.films), result.print_job_sop_instance_uid
    )
    return result


def _archive_uids(job_id: int) -> PrintJob:
    """Study and series of the job's films in the archive (assigned at the first print)."""
    with transaction.atomic():
        job = PrintJob.objects.select_for_update().get(pk=job_id)
        if not job.study_instance_uid:
            job.study_instance_uid, job.series_instance_uid = generate_uid(), generate_uid()
            job.save(update_fields=["study_instance_uid", "series_instance_uid"])
    return job


def image_box_render(image_box: dict, *, color: bool) -> composition.ImageBoxRender:
    """Composer input for an image box snapshot (received pixels read back from the print folder)."""
    attributes = dataset_from_json(image_box["attributes"])
    image = None
    if image_box["pixel_file"]:
        item = dcmread(files.absolute_path(image_box["pixel_file"]), force=True)
        image = composition.preformatted_image_read(item, color=color)
    size = attributes.get("RequestedImageSize")
    return composition.ImageBoxRender(
        position=image_box["position"],
        image=image,
        polarity=str(attributes.get("Polarity") or "NORMAL").upper(),
        magnification_type=str(attributes.get("MagnificationType") or "").upper(),
        requested_image_size_mm=float(size) if size not in (None, "") else None,
    )


def film_render(
    *,
    film_box: dict,
    image_display_format: str,
    film_size_id: str,
    film_orientation: str,
    image_boxes: list[dict],
    color: bool,
    dpi: int,
    annotations: list[dict] | None = None,
) -> np.ndarray:
    """Compose a film from its snapshot (film box DICOM JSON + image box and annotation snapshots)."""
    effective = film_box_effective(film_box)
    with_annotations = ANNOTATION_DISPLAY_FORMAT_ID_TAG in film_box
    return composition.film_compose(
        image_display_format=image_display_format,
        film_size_id=film_size_id,
        film_orientation=film_orientation,
        image_boxes=[image_box_render(ib, color=color) for ib in image_boxes],
        dpi=dpi,
        color=color,
        magnification_type=effective["MagnificationType"],
        border_density=effective["BorderDensity"],
        empty_image_density=effective["EmptyImageDensity"],
        min_density=effective["MinDensity"],
        max_density=effective["MaxDensity"],
        trim=effective["Trim"] == "YES",
        annotations={a["position"]: a["text"] for a in annotations or []} if with_annotations else None,
    )


def _film_make(
    context: PrintContext, job: PrintJob, box: FilmBox, image_boxes: list[ImageBox], number: int, print_job_uid: str
) -> Film:
    snapshot = [
        {
            "position": ib.image_box_position,
            "sop_class_uid": ib.sop_class_uid,
            "attributes": ib.attributes,
            "pixel_file": ib.pixel_file,
        }
        for ib in image_boxes
    ]
    annotations = [
        {"position": position, "text": text}
        for position, text in AnnotationBox.objects.filter(film_box=box, annotation_position__isnull=False)
        .exclude(text_string="")
        .order_by("annotation_position", "id")
        .values_list("annotation_position", "text_string")
    ]
    color = job.is_color
    dpi = settings.PACS_PRINT_DPI
    pixels = film_render(
        film_box=box.attributes,
        image_display_format=box.image_display_format,
        film_size_id=box.film_size_id,
        film_orientation=box.film_orientation,
        image_boxes=snapshot,
        color=color,
        dpi=dpi,
        annotations=annotations,
    )
    sop_instance_uid = generate_uid()
    data = _secondary_capture(job, box, pixels, number, sop_instance_uid, dpi)
    ingested = instance_ingest(
        source=data,
        origin=IngestOrigin(
            source="print", calling_aet=job.calling_aet, called_aet=job.called_aet, peer_address=job.peer_address
        ),
    )
    preview = f"{files.job_folder_relative(job.pk)}/films/film-{number}.png"
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="RGB" if color else "L").save(buffer, format="PNG", optimize=False)
    files.file_write(preview, buffer.getvalue())
    lut_uid = ""
    references = dataset_from_json(box.attributes).get("ReferencedPresentationLUTSequence")
    if references:
        lut_uid = str(references[0].get("ReferencedSOPInstanceUID", ""))
    film = Film.objects.create(
        print_job=job,
        film_number=number,
        film_box_uid=box.sop_instance_uid,
        print_job_sop_instance_uid=print_job_uid,
        image_display_format=box.image_display_format,
        film_orientation=box.film_orientation,
        film_size_id=box.film_size_id,
        film_box=box.attributes,
        image_boxes=snapshot,
        presentation_lut=context.presentation_luts.get(lut_uid),
        annotations=annotations,
        number_of_images=sum(1 for ib in snapshot if ib["pixel_file"]),
        rows=pixels.shape[0],
        columns=pixels.shape[1],
        preview_file=preview,
        sop_instance_uid=sop_instance_uid,
        instance_id=ingested.instance_id,
    )
    logger.info(
        "film composed print_job=%s film=%d format=%s size=%s rows=%d columns=%d sop_instance_uid=%s",
        job.pk,
        number,
        box.image_display_format,
        box.film_size_id,
        film.rows,
        film.columns,
        sop_instance_uid,
    )
    return film


def _secondary_capture(
    job: PrintJob, box: FilmBox, pixels: np.ndarray, number: int, sop_instance_uid: str, dpi: int
) -> bytes:
    """The composed film as a Secondary Capture Image (PS3.3 A.8.1), Part 10 bytes."""
    created = timezone.localtime(job.created_at)
    now = timezone.localtime()
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = sop_instance_uid
    ds.StudyInstanceUID = job.study_instance_uid
    ds.SeriesInstanceUID = job.series_instance_uid
    ds.PatientID = f"PRINT-{job.calling_aet}"[:64]
    ds.PatientName = f"PRINT^{job.calling_aet}"
    ds.StudyDate = created.strftime("%Y%m%d")
    ds.StudyTime = created.strftime("%H%M%S")
    ds.StudyID = str(job.pk)
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = (
        f"Print from {job.calling_aet}" + (f": {job.film_session_label}" if job.film_session_label else "")
    )[:64]
    ds.Modality = "OT"
    ds.ConversionType = "WSD"
    ds.SeriesNumber = 1
    ds.SeriesDescription = "Printed films"
    ds.InstanceNumber = number
    ds.ContentDate = now.strftime("%Y%m%d")
    ds.ContentTime = now.strftime("%H%M%S")
    ds.ImageComments = f"{box.image_display_format} {box.film_size_id} {box.film_orientation}"[:10240]
    ds.NominalScannedPixelSpacing = [round(25.4 / dpi, 6), round(25.4 / dpi, 6)]
    ds.Rows, ds.Columns = pixels.shape[0], pixels.shape[1]
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    if pixels.ndim == 3:
        ds.SamplesPerPixel = 3
        ds.PhotometricInterpretation = "RGB"
        ds.PlanarConfiguration = 0
    else:
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    ds["PixelData"].VR = "OB"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = sop_instance_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


# --- Print Job (PS3.4 H.4.6) ---------------------------------------------------------------


def print_job_get(*, sop_instance_uid: str, identifiers: list[int] | None = None) -> Dataset:
    """N-GET of a Print Job SOP instance: execution status (PS3.4 H.4.6.2.1).

    Raises
    ------
    NoSuchObjectInstance
        0x0112: no N-ACTION answered this Print Job SOP Instance UID.
    """
    film = (
        Film.objects.select_related("print_job")
        .filter(print_job_sop_instance_uid=sop_instance_uid)
        .order_by("film_number")
        .first()
    )
    if film is None:
        raise NoSuchObjectInstance(f"No such Print Job: {sop_instance_uid}")
    job = film.print_job
    created = timezone.localtime(film.created_at)
    ds = Dataset()
    ds.ExecutionStatus = PrintJobStatus.DONE
    ds.ExecutionStatusInfo = "NORMAL"
    ds.PrintPriority = job.print_priority or "MED"
    ds.CreationDate = created.strftime("%Y%m%d")
    ds.CreationTime = created.strftime("%H%M%S")
    ds.PrinterName = PRINTER_NAME
    ds.Originator = job.calling_aet
    if identifiers:
        wanted = {Tag(tag) for tag in identifiers}
        for elem in list(ds):
            if elem.tag not in wanted:
                del ds[elem.tag]
    return ds

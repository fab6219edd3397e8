"""Print SCP state: film sessions, film boxes and image boxes (PS3.4 H.4.1-H.4.3).

One service per DIMSE operation of the Basic Grayscale/Color Print Management
Meta SOP Classes; the handlers in ``dimse/handlers/printing.py`` only translate.
Services take and return pydicom ``Dataset`` objects and a
:class:`~printing.services.context.PrintContext`.  Every
:class:`~printing.exceptions.PrintError` raised while a print job exists is
recorded on it (status FAILURE with the reason) before it propagates to the
handler, which answers its status and Error Comment.  Printing (N-ACTION) is
in :mod:`printing.services.films`, the printer and LUTs in
:mod:`printing.services.printer`.
"""

from __future__ import annotations

import io
import logging
import uuid

from django.db import transaction
from django.utils import timezone
from pydicom import dcmwrite
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from printing.choices import FilmOrientation, MagnificationType, Polarity
from printing.exceptions import (
    ClassInstanceConflict,
    DuplicateSOPInstance,
    InvalidAttributeValue,
    MissingAttribute,
    NoSuchAttribute,
    NoSuchObjectInstance,
    PrintProcessingFailure,
)
from printing.models import AnnotationBox, FilmBox, ImageBox, PrintJob
from printing.services import composition, files
from printing.services.context import (
    BASIC_ANNOTATION_BOX,
    BASIC_COLOR_IMAGE_BOX,
    BASIC_FILM_SESSION,
    BASIC_GRAYSCALE_IMAGE_BOX,
    IMAGE_BOX_CLASS,
    IMAGE_SEQUENCE,
    PrintContext,
    attribute_text,
    dataset_from_json,
    film_box_get,
    json_without_references,
    lut_reference,
    records_failure,
    session_check,
    uid_checked,
)
from printing.services.print_jobs import print_job_session_close

logger = logging.getLogger(__name__)

ANNOTATION_BOX_SETTABLE = {"AnnotationPosition", "TextString"}
# Film box values in effect when the SCU does not send them (printer defaults, PS3.3 C.13.3).
FILM_BOX_DEFAULTS = {
    "MagnificationType": composition.DEFAULT_MAGNIFICATION,
    "BorderDensity": composition.DEFAULT_BORDER_DENSITY,
    "EmptyImageDensity": composition.DEFAULT_EMPTY_IMAGE_DENSITY,
    "MinDensity": composition.DEFAULT_MIN_DENSITY,
    "MaxDensity": composition.DEFAULT_MAX_DENSITY,
    "Trim": "NO",
}
# Attributes an SCU may N-SET (PS3.4 H.4.1.2.2, H.4.2.2.2, H.4.3.1.2.1, H.4.3.2.2.1).
FILM_SESSION_SETTABLE = {
    "NumberOfCopies",
    "PrintPriority",
    "MediumType",
    "FilmDestination",
    "FilmSessionLabel",
    "MemoryAllocation",
    "OwnerID",
    "ReferencedPresentationLUTSequence",
    "Illumination",
    "ReflectedAmbientLight",
}
FILM_BOX_SETTABLE = {
    "MagnificationType",
    "SmoothingType",
    "BorderDensity",
    "EmptyImageDensity",
    "MinDensity",
    "MaxDensity",
    "Trim",
    "ConfigurationInformation",
    "Illumination",
    "ReflectedAmbientLight",
    "ReferencedPresentationLUTSequence",
}
IMAGE_BOX_SETTABLE = {
    "ImageBoxPosition",
    "Polarity",
    "MagnificationType",
    "SmoothingType",
    "MinDensity",
    "MaxDensity",
    "ConfigurationInformation",
    "RequestedImageSize",
    "RequestedDecimateCropBehavior",
    "ReferencedPresentationLUTSequence",
    "BasicGrayscaleImageSequence",
    "BasicColorImageSequence",
}

# --- Basic Film Session (PS3.4 H.4.1) --------------------------------------------------------


def _session_values(ds: Dataset) -> dict:
    values: dict = {}
    if "NumberOfCopies" in ds:
        try:
            copies = int(ds.NumberOfCopies)
        except (TypeError, ValueError):
            copies = 0
        if not 1 <= copies <= 99:
            raise InvalidAttributeValue(f"Number of Copies {ds.NumberOfCopies!r} must be 1-99")
        values["number_of_copies"] = copies
    if "PrintPriority" in ds:
        priority = attribute_text(ds, "PrintPriority", "MED").upper()
        if priority not in ("HIGH", "MED", "LOW"):
            raise InvalidAttributeValue(f"Print Priority {priority!r} must be HIGH, MED or LOW")
        values["print_priority"] = priority
    for keyword, name, size in (
        ("MediumType", "medium_type", 16),
        ("FilmDestination", "film_destination", 16),
        ("FilmSessionLabel", "film_session_label", 64),
        ("OwnerID", "owner_id", 64),
    ):
        if keyword in ds:
            values[name] = attribute_text(ds, keyword)[:size]
    return values


@records_failure
def film_session_create(
    *, context: PrintContext, meta_sop_class_uid: str, sop_instance_uid: str | None, attributes: Dataset
) -> tuple[str, Dataset]:
    """N-CREATE of the Basic Film Session: starts a print job (PS3.4 H.4.1.2.1).

    Returns the SOP Instance UID (the SCU's or a new one) and the attribute list.

    Raises
    ------
    DuplicateSOPInstance
        0x0111: a film session already exists on this association.
    InvalidAttributeValue
        0x0106: an invalid UID or attribute value.
    """
    if context.film_session_uid:
        raise DuplicateSOPInstance(
            f"A Film Session already exists on this association (PS3.4 H.4.1): {context.film_session_uid}"
        )
    uid = uid_checked(sop_instance_uid, "Film Session SOP Instance UID") if sop_instance_uid else generate_uid()
    values = {"number_of_copies": 1, "print_priority": "MED", **_session_values(attributes)}
    lut_reference(context, attributes)
    job = PrintJob.objects.create(
        film_session_uid=uid,
        meta_sop_class_uid=meta_sop_class_uid,
        calling_aet=context.calling_aet[:16],
        called_aet=context.called_aet[:16],
        peer_address=context.peer_address[:64],
        attributes=json_without_references(attributes),
        **values,
    )
    context.job_id, context.film_session_uid, context.meta_sop_class_uid = job.pk, uid, meta_sop_class_uid
    logger.info(
        "film session created print_job=%s calling_aet=%s film_session_uid=%s", job.pk, context.calling_aet, uid
    )
    reply = Dataset()
    reply.NumberOfCopies = job.number_of_copies
    reply.PrintPriority = job.print_priority
    reply.MediumType = job.medium_type or "BLUE FILM"
    reply.FilmDestination = job.film_destination or "MAGAZINE"
    if job.film_session_label:
        reply.FilmSessionLabel = job.film_session_label
    return uid, reply


@records_failure
def film_session_update(*, context: PrintContext, sop_instance_uid: str, modifications: Dataset) -> Dataset:
    """N-SET of the Basic Film Session (PS3.4 H.4.1.2.2)."""
    job = session_check(context, sop_instance_uid)
    unknown = sorted(
        elem.keyword or str(elem.tag) for elem in modifications if elem.keyword not in FILM_SESSION_SETTABLE
    )
    if unknown:
        raise NoSuchAttribute(f"Film Session attributes cannot be set: {', '.join(unknown)}")
    values = _session_values(modifications)
    lut_reference(context, modifications)
    attributes = {**job.attributes, **json_without_references(modifications)}
    PrintJob.objects.filter(pk=job.pk).update(attributes=attributes, updated_at=timezone.now(), **values)
    return modifications


@records_failure
def film_session_delete(*, context: PrintContext, sop_instance_uid: str) -> None:
    """N-DELETE of the Basic Film Session and its film/image boxes (PS3.4 H.4.1.2.4).

    Films already printed stay; a session deleted before anything was printed
    leaves its print job FAILURE.
    """
    job = session_check(context, sop_instance_uid)
    print_job_session_close(job_id=job.pk, reason="Film Session deleted (N-DELETE) before any film was printed")
    context.film_session_uid, context.job_id = "", None
    logger.info("film session deleted print_job=%s", job.pk)


def association_end(*, context: PrintContext, aborted: bool) -> None:
    """The association ended: its film session ends too (PS3.4 H.4.1)."""
    if context.job_id is None:
        return
    how = "aborted" if aborted else "released"
    print_job_session_close(job_id=context.job_id, reason=f"Association {how} before any film was printed")
    context.job_id, context.film_session_uid = None, ""


# --- Basic Film Box (PS3.4 H.4.2) ------------------------------------------------------------


def _film_box_values(ds: Dataset, current: dict | None = None) -> dict:
    """Validated effective film box values (current values overlaid with *ds*)."""
    values = dict(current or {})
    if "MagnificationType" in ds and attribute_text(ds, "MagnificationType"):
        magnification = attribute_text(ds, "MagnificationType").upper()
        if magnification not in MagnificationType.values:
            raise InvalidAttributeValue(
                f"Magnification Type {magnification!r} must be one of {MagnificationType.values}"
            )
        values["MagnificationType"] = magnification
    for keyword in ("BorderDensity", "EmptyImageDensity"):
        if attribute_text(ds, keyword):
            values[keyword] = composition.density_validate(attribute_text(ds, keyword), keyword)
    for keyword in ("MinDensity", "MaxDensity"):
        if keyword in ds and ds.get(keyword) not in (None, ""):
            try:
                values[keyword] = int(ds.get(keyword))
            except (TypeError, ValueError) as exc:
                raise InvalidAttributeValue(f"{keyword} {ds.get(keyword)!r} is not a number") from exc
    if values.get("MinDensity", 0) >= values.get("MaxDensity", composition.DEFAULT_MAX_DENSITY):
        raise InvalidAttributeValue("Min Density must be lower than Max Density")
    if attribute_text(ds, "Trim"):
        trim = attribute_text(ds, "Trim").upper()
        if trim not in ("YES", "NO"):
            raise InvalidAttributeValue(f"Trim {trim!r} must be YES or NO")
        values["Trim"] = trim
    return values


@records_failure
def film_box_create(*, context: PrintContext, sop_instance_uid: str | None, attributes: Dataset) -> tuple[str, Dataset]:
    """N-CREATE of a Basic Film Box with its image boxes (PS3.4 H.4.2.2.1).

    Several film boxes per session are allowed; the reply lists the attributes
    in effect and the Referenced Image Box Sequence (one per layout position).

    Raises
    ------
    NoSuchObjectInstance
        0x0112: no film session on this association.
    MissingAttribute / InvalidAttributeValue
        0x0120 / 0x0106: Image Display Format absent or not STANDARD/ROW/COL,
        unknown Film Size ID, orientation or density values.
    DuplicateSOPInstance
        0x0111: the SCU-chosen UID already names a film box of the session.
    """
    references = attributes.get("ReferencedFilmSessionSequence")
    if not references:
        raise MissingAttribute("Referenced Film Session Sequence is missing")
    session_uid = str(references[0].get("ReferencedSOPInstanceUID", "")).strip()
    job = session_check(context, session_uid)
    display_format = attribute_text(attributes, "ImageDisplayFormat")
    if not display_format:
        raise MissingAttribute("Image Display Format is missing")
    layout = composition.display_format_parse(display_format)
    orientation = attribute_text(attributes, "FilmOrientation", composition.DEFAULT_ORIENTATION).upper()
    if orientation not in FilmOrientation.values:
        raise InvalidAttributeValue(f"Film Orientation {orientation!r} must be PORTRAIT or LANDSCAPE")
    film_size = composition.film_size_validate(
        attribute_text(attributes, "FilmSizeID", composition.DEFAULT_FILM_SIZE).upper()
    )
    effective = _film_box_values(attributes, FILM_BOX_DEFAULTS)
    lut_reference(context, attributes)
    uid = uid_checked(sop_instance_uid, "Film Box SOP Instance UID") if sop_instance_uid else generate_uid()
    image_box_class = IMAGE_BOX_CLASS[job.meta_sop_class_uid]
    with transaction.atomic():
        if FilmBox.objects.filter(print_job=job, sop_instance_uid=uid).exists():
            raise DuplicateSOPInstance(f"Film Box already exists: {uid}")
        box = FilmBox.objects.create(
            print_job=job,
            sop_instance_uid=uid,
            image_display_format=display_format.upper(),
            film_orientation=orientation,
            film_size_id=film_size,
            attributes=json_without_references(attributes),
        )
        image_boxes = ImageBox.objects.bulk_create(
            ImageBox(
                film_box=box,
                sop_instance_uid=generate_uid(),
                sop_class_uid=image_box_class,
                image_box_position=position,
            )
            for position in range(1, layout.image_box_count + 1)
        )
        annotation_boxes = []
        if attribute_text(attributes, "AnnotationDisplayFormatID"):
            annotation_boxes = AnnotationBox.objects.bulk_create(
                AnnotationBox(film_box=box, sop_instance_uid=generate_uid())
                for _ in range(composition.ANNOTATION_POSITIONS)
            )
    logger.info(
        "film box created print_job=%s film_box_uid=%s format=%s size=%s orientation=%s",
        job.pk,
        uid,
        box.image_display_format,
        film_size,
        orientation,
    )
    reply = Dataset()
    reply.ImageDisplayFormat = box.image_display_format
    reply.FilmOrientation = orientation
    reply.FilmSizeID = film_size
    reply.MagnificationType = effective["MagnificationType"]
    reply.BorderDensity = effective["BorderDensity"]
    reply.EmptyImageDensity = effective["EmptyImageDensity"]
    reply.MinDensity = effective["MinDensity"]
    reply.MaxDensity = effective["MaxDensity"]
    reply.Trim = effective["Trim"]
    session_ref = Dataset()
    session_ref.ReferencedSOPClassUID = BASIC_FILM_SESSION
    session_ref.ReferencedSOPInstanceUID = job.film_session_uid
    reply.ReferencedFilmSessionSequence = [session_ref]
    items = []
    for image_box in image_boxes:
        item = Dataset()
        item.ReferencedSOPClassUID = image_box_class
        item.ReferencedSOPInstanceUID = image_box.sop_instance_uid
        items.append(item)
    reply.ReferencedImageBoxSequence = items
    if annotation_boxes:
        reply.AnnotationDisplayFormatID = attribute_text(attributes, "AnnotationDisplayFormatID")
        references = []
        for annotation_box in annotation_boxes:
            item = Dataset()
            item.ReferencedSOPClassUID = BASIC_ANNOTATION_BOX
            item.ReferencedSOPInstanceUID = annotation_box.sop_instance_uid
            references.append(item)
        reply.ReferencedBasicAnnotationBoxSequence = references
    return uid, reply


@records_failure
def film_box_update(*, context: PrintContext, sop_instance_uid: str, modifications: Dataset) -> Dataset:
    """N-SET of a Basic Film Box (PS3.4 H.4.2.2.2)."""
    box = film_box_get(context, sop_instance_uid)
    unknown = sorted(elem.keyword or str(elem.tag) for elem in modifications if elem.keyword not in FILM_BOX_SETTABLE)
    if unknown:
        raise NoSuchAttribute(f"Film Box attributes cannot be set: {', '.join(unknown)}")
    _film_box_values(modifications, film_box_effective(box.attributes))
    lut_reference(context, modifications)
    FilmBox.objects.filter(pk=box.pk).update(attributes={**box.attributes, **json_without_references(modifications)})
    return modifications


@records_failure
def film_box_delete(*, context: PrintContext, sop_instance_uid: str) -> None:
    """N-DELETE of a Basic Film Box and its image boxes (PS3.4 H.4.2.2.4)."""
    box = film_box_get(context, sop_instance_uid)
    box.delete()


def film_box_effective(attributes: dict) -> dict:
    """Film box values in effect (received DICOM JSON over the defaults)."""
    ds = dataset_from_json(attributes)
    return _film_box_values(ds, FILM_BOX_DEFAULTS)


# --- Image boxes (PS3.4 H.4.3) ----------------------------------------------------------------


@records_failure
def image_box_set(
    *,
    context: PrintContext,
    sop_class_uid: str,
    sop_instance_uid: str,
    modifications: Dataset,
    little_endian: bool = True,
) -> Dataset:
    """N-SET of a Basic Grayscale/Color Image Box: keep its pixels and attributes (PS3.4 H.4.3.1.2.1).

    The preformatted image is validated (photometric interpretation, bits,
    Pixel Data length) and kept as received, little endian, under the print
    folder.

    Raises
    ------
    NoSuchObjectInstance
        0x0112: no such image box in this film session.
    ClassInstanceConflict
        0x0119: grayscale N-SET of a color image box or the reverse.
    MissingAttribute / InvalidAttributeValue
        0x0120 / 0x0106: image sequence absent, pixel data not matching its attributes.
    """
    image_box = None
    if context.job_id is not None:
        image_box = (
            ImageBox.objects.select_related("film_box")
            .filter(film_box__print_job_id=context.job_id, sop_instance_uid=sop_instance_uid)
            .first()
        )
    if image_box is None:
        raise NoSuchObjectInstance(f"No such Image Box in this film session: {sop_instance_uid}")
    if sop_class_uid != image_box.sop_class_uid:
        raise ClassInstanceConflict(f"Image Box is of SOP Class {image_box.sop_class_uid}: {sop_instance_uid}")
    unknown = sorted(elem.keyword or str(elem.tag) for elem in modifications if elem.keyword not in IMAGE_BOX_SETTABLE)
    if unknown:
        raise NoSuchAttribute(f"Image Box attributes cannot be set: {', '.join(unknown)}")
    if "ImageBoxPosition" in modifications and int(modifications.ImageBoxPosition) != image_box.image_box_position:
        raise InvalidAttributeValue(
            f"Image Box Position {modifications.ImageBoxPosition} does not match {image_box.image_box_position}"
        )
    polarity = attribute_text(modifications, "Polarity", Polarity.NORMAL).upper()
    if polarity not in Polarity.values:
        raise InvalidAttributeValue(f"Polarity {polarity!r} must be NORMAL or REVERSE")
    magnification = attribute_text(modifications, "MagnificationType").upper()
    if magnification and magnification not in MagnificationType.values:
        raise InvalidAttributeValue(f"Magnification Type {magnification!r} must be one of {MagnificationType.values}")
    if attribute_text(modifications, "RequestedImageSize"):
        try:
            float(modifications.RequestedImageSize)
        except (TypeError, ValueError) as exc:
            raise InvalidAttributeValue(f"Requested Image Size {modifications.RequestedImageSize!r}") from exc
    lut_reference(context, modifications)
    sequence_keyword = IMAGE_SEQUENCE[sop_class_uid]
    other = IMAGE_SEQUENCE[
        BASIC_COLOR_IMAGE_BOX if sop_class_uid == BASIC_GRAYSCALE_IMAGE_BOX else BASIC_GRAYSCALE_IMAGE_BOX
    ]
    if other in modifications:
        raise InvalidAttributeValue(f"{other} does not belong to a {sequence_keyword[5:-8]} image box")
    fields: dict = {
        "attributes": {**image_box.attributes, **json_without_references(modifications, {sequence_keyword})},
        "updated_at": timezone.now(),
    }
    sequence = modifications.get(sequence_keyword)
    if sequence is not None:
        if len(sequence) != 1:
            raise InvalidAttributeValue(f"{sequence_keyword} must hold exactly one item")
        item = sequence[0]
        image = composition.preformatted_image_read(
            item, color=sop_class_uid == BASIC_COLOR_IMAGE_BOX, little_endian=little_endian
        )
        fields["pixel_file"] = _pixels_keep(context.job_id, sop_instance_uid, item, little_endian)
        fields["rows"], fields["columns"] = image.pixels.shape[0], image.pixels.shape[1]
    ImageBox.objects.filter(pk=image_box.pk).update(**fields)
    logger.debug("image box set print_job=%s position=%s", context.job_id, image_box.image_box_position)
    return Dataset()


@records_failure
def annotation_box_set(*, context: PrintContext, sop_instance_uid: str, modifications: Dataset) -> Dataset:
    """N-SET of a Basic Annotation Box: the text printed at its position (PS3.4 H.4.5.2.1).

    Raises
    ------
    NoSuchObjectInstance
        0x0112: no such annotation box in this film session.
    NoSuchAttribute / MissingAttribute / InvalidAttributeValue
        0x0105 / 0x0120 / 0x0106: an attribute other than Annotation Position
        and Text String, no position, or a position this printer does not offer.
    """
    annotation_box = None
    if context.job_id is not None:
        annotation_box = AnnotationBox.objects.filter(
            film_box__print_job_id=context.job_id, sop_instance_uid=sop_instance_uid
        ).first()
    if annotation_box is None:
        raise NoSuchObjectInstance(f"No such Annotation Box in this film session: {sop_instance_uid}")
    unknown = sorted(
        elem.keyword or str(elem.tag) for elem in modifications if elem.keyword not in ANNOTATION_BOX_SETTABLE
    )
    if unknown:
        raise NoSuchAttribute(f"Annotation Box attributes cannot be set: {', '.join(unknown)}")
    position = modifications.get("AnnotationPosition")
    if position in (None, ""):
        if annotation_box.annotation_position is None:
            raise MissingAttribute("Annotation Position is missing")
        position = annotation_box.annotation_position
    if not 1 <= int(position) <= composition.ANNOTATION_POSITIONS:
        raise InvalidAttributeValue(
            f"Annotation Position {position} is not 1-{composition.ANNOTATION_POSITIONS} (1-3 top, 4-6 bottom)"
        )
    text = attribute_text(modifications, "TextString")[:64]
    AnnotationBox.objects.filter(pk=annotation_box.pk).update(annotation_position=int(position), text_string=text)
    return Dataset()


def _pixels_keep(job_id: int, image_box_uid: str, item: Dataset, little_endian: bool) -> str:
    """Write the received preformatted image (little endian) under the job folder; return its path."""
    ds = Dataset()
    for elem in item:
        ds.add(elem)
    if not little_endian and int(ds.BitsAllocated) == 16:
        data = bytearray(ds.PixelData)
        data[0::2], data[1::2] = data[1::2], data[0::2]
        ds.PixelData = bytes(data)
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, implicit_vr=False, little_endian=True)
    relative = f"{files.job_folder_relative(job_id)}/images/{image_box_uid}-{uuid.uuid4().hex[:8]}.dcm"
    try:
        files.file_write(relative, buffer.getvalue())
    except OSError as exc:
        raise PrintProcessingFailure(f"Cannot keep the image box pixels: {exc.strerror or exc}") from exc
    return relative

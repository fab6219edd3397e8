"""Print SCU: print film sessions on a remote DICOM printer (PS3.4 Annex H, SCU role).

Used by the print gateway to forward films with their original layout: one
association per call, the standard sequence Printer N-GET, Film Session
N-CREATE, then per film (Presentation LUT N-CREATE,) Film Box N-CREATE, Image
Box N-SET per filled position, Film Box N-ACTION and N-DELETE, and finally
Film Session N-DELETE.  SOP Instance UIDs are chosen by this SCU (PS3.4
H.4.1.2.1 and H.4.2.2.1 allow it), so no printer-assigned UID has to be read
back from a response.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import (
    BasicAnnotationBox,
    BasicColorPrintManagementMeta,
    BasicFilmBox,
    BasicFilmSession,
    BasicGrayscalePrintManagementMeta,
    PresentationLUT,
    Printer,
    PrinterInstance,
)
from pynetdicom.status import code_to_category

logger = logging.getLogger(__name__)

ACTION_PRINT = 1
LITTLE_ENDIAN = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
_OK = ("Success", "Warning")


class PrintScuError(Exception):
    """The printer refused, failed or could not be reached."""


@dataclass
class FilmToPrint:
    """One film: Film Box N-CREATE attributes and Image Box N-SET lists by position."""

    film_box: Dataset
    image_boxes: dict[int, Dataset]  # Image Box Position -> N-SET modification list (with the image sequence)
    presentation_lut: Dataset | None = None
    annotations: dict[int, str] = field(default_factory=dict)  # Annotation Position -> Text String


def _check(status: Dataset, what: str) -> None:
    code = getattr(status, "Status", None)
    if code is None:
        raise PrintScuError(f"{what}: no response from the printer (timeout or association aborted)")
    if code_to_category(code) not in _OK:
        comment = str(status.get("ErrorComment", "") or "").strip()
        raise PrintScuError(f"{what} failed with status 0x{code:04X}" + (f": {comment}" if comment else ""))


def film_session_print(
    *,
    host: str,
    port: int,
    called_aet: str,
    calling_aet: str,
    color: bool,
    session: Dataset,
    films: list[FilmToPrint],
    timeout: float = 60,
    on_film: Callable[[int], None] | None = None,
) -> dict:
    """Print *films* as one film session on the printer at *host*:*port*.

    Returns ``{"films", "images", "printer_status", "print_job_uids", "seconds"}``.

    Raises
    ------
    PrintScuError
        Association refused, a failure status (with its Error Comment), a
        printer that answers fewer image boxes than the layout needs, or a timeout.
    """
    started = time.perf_counter()
    meta = BasicColorPrintManagementMeta if color else BasicGrayscalePrintManagementMeta
    ae = AE(ae_title=calling_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    # Little endian only: the kept image box pixels are little endian words and pydicom
    # writes OW bytes as given, so a big endian context would swap every 16-bit pixel.
    ae.add_requested_context(meta, LITTLE_ENDIAN)
    with_lut = any(film.presentation_lut is not None for film in films)
    if with_lut:
        ae.add_requested_context(PresentationLUT, LITTLE_ENDIAN)
    if any(film.annotations for film in films):
        ae.add_requested_context(BasicAnnotationBox, LITTLE_ENDIAN)
    assoc = ae.associate(host, port, ae_title=called_aet)
    if not assoc.is_established:
        raise PrintScuError(f"Association with {called_aet}@{host}:{port} was rejected or failed")
    images = 0
    print_job_uids: list[str] = []
    dropped: list[str] = []
    try:
        if not any(cx.abstract_syntax == meta for cx in assoc.accepted_contexts):
            raise PrintScuError(f"{called_aet} does not accept the {meta.name}")
        lut_accepted = any(cx.abstract_syntax == PresentationLUT for cx in assoc.accepted_contexts)
        annotation_accepted = any(cx.abstract_syntax == BasicAnnotationBox for cx in assoc.accepted_contexts)
        status, printer = assoc.send_n_get([0x21100010, 0x21100020], Printer, PrinterInstance, meta_uid=meta)
        _check(status, "Printer N-GET")
        printer_status = str(printer.get("PrinterStatus", "")) if printer else ""
        if printer_status == "FAILURE":
            raise PrintScuError(f"{called_aet} reports Printer Status FAILURE")
        session_uid = generate_uid()
        status, _ = assoc.send_n_create(session, BasicFilmSession, session_uid, meta_uid=meta)
        _check(status, "Film Session N-CREATE")
        for number, film in enumerate(films, start=1):
            images += _film_print(
                assoc, meta, session_uid, film, lut_accepted, annotation_accepted, print_job_uids, dropped, number
            )
            if on_film:
                on_film(number)
        status = assoc.send_n_delete(BasicFilmSession, session_uid, meta_uid=meta)
        _check(status, "Film Session N-DELETE")
    finally:
        if assoc.is_established:
            assoc.release()
    seconds = time.perf_counter() - started
    logger.info(
        "print forwarded called_aet=%s host=%s films=%d images=%d ms=%d",
        called_aet,
        host,
        len(films),
        images,
        seconds * 1000,
    )
    return {
        "films": len(films),
        "images": images,
        "printer_status": printer_status,
        "print_job_uids": print_job_uids,
        "annotations_dropped": dropped,
        "seconds": round(seconds, 3),
    }


def _film_print(
    assoc,
    meta,
    session_uid: str,
    film: FilmToPrint,
    lut_accepted: bool,
    annotation_accepted: bool,
    print_job_uids: list[str],
    dropped: list[str],
    number: int,
) -> int:
    film_box = Dataset()
    for elem in film.film_box:
        film_box.add(elem)
    reference = Dataset()
    reference.ReferencedSOPClassUID = BasicFilmSession
    reference.ReferencedSOPInstanceUID = session_uid
    film_box.ReferencedFilmSessionSequence = [reference]
    lut_uid = ""
    if film.presentation_lut is not None and lut_accepted:
        lut_uid = generate_uid()
        status, _ = assoc.send_n_create(film.presentation_lut, PresentationLUT, lut_uid)
        _check(status, f"Film {number}: Presentation LUT N-CREATE")
        lut_reference = Dataset()
        lut_reference.ReferencedSOPClassUID = PresentationLUT
        lut_reference.ReferencedSOPInstanceUID = lut_uid
        film_box.ReferencedPresentationLUTSequence = [lut_reference]
    film_box_uid = generate_uid()
    status, reply = assoc.send_n_create(film_box, BasicFilmBox, film_box_uid, meta_uid=meta)
    _check(status, f"Film {number}: Film Box N-CREATE")
    boxes = list(reply.get("ReferencedImageBoxSequence", [])) if reply else []
    wanted = max(film.image_boxes, default=0)
    if len(boxes) < wanted:
        raise PrintScuError(
            f"Film {number}: the printer answered {len(boxes)} image boxes for {film_box.get('ImageDisplayFormat')}, "
            f"{wanted} needed"
        )
    images = 0
    for position, modifications in sorted(film.image_boxes.items()):
        item = boxes[position - 1]
        status, _ = assoc.send_n_set(
            modifications, item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID, meta_uid=meta
        )
        _check(status, f"Film {number}: Image Box {position} N-SET")
        images += 1
    _annotations_set(assoc, film, reply, annotation_accepted, dropped, number)
    status, action_reply = assoc.send_n_action(None, ACTION_PRINT, BasicFilmBox, film_box_uid, meta_uid=meta)
    _check(status, f"Film {number}: Film Box N-ACTION")
    jobs = action_reply.get("ReferencedPrintJobSequence") if action_reply else None
    if jobs:
        print_job_uids.append(str(jobs[0].ReferencedSOPInstanceUID))
    status = assoc.send_n_delete(BasicFilmBox, film_box_uid, meta_uid=meta)
    _check(status, f"Film {number}: Film Box N-DELETE")
    if lut_uid:
        status = assoc.send_n_delete(PresentationLUT, lut_uid)
        _check(status, f"Film {number}: Presentation LUT N-DELETE")
    return images


def _annotations_set(assoc, film: FilmToPrint, reply, accepted: bool, dropped: list[str], number: int) -> None:
    """N-SET the film's annotation texts; a printer without annotation boxes prints the film without them."""
    if not film.annotations:
        return
    boxes = list(reply.get("ReferencedBasicAnnotationBoxSequence", [])) if reply else []
    # Annotation boxes carry no position until the SCU sets one (PS3.4 H.4.5): one box per text.
    for index, (position, text) in enumerate(sorted(film.annotations.items())):
        if not accepted or index >= len(boxes):
            dropped.append(f"film {number} position {position}")
            continue
        modification = Dataset()
        modification.AnnotationPosition = position
        modification.TextString = text
        item = boxes[index]
        status, _ = assoc.send_n_set(modification, item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID)
        _check(status, f"Film {number}: Annotation Box {position} N-SET")

"""Print gateway: the ``print-forward`` job runner that re-prints films on a DICOM printer.

Each film is rebuilt from its snapshot (film box attributes as received,
image box attributes and the received preformatted pixels) so the printer
gets the original layout and attributes, not a 1x1 re-composition.  Runs as a
background job (``pacs.services.jobs``: status, progress, retry).
"""

from __future__ import annotations

import logging

from django.conf import settings
from pydicom import dcmread
from pydicom.dataset import Dataset

from dimse.models import Listener, ListenerService, RemoteNode
from dimse.print_scu import FilmToPrint, PrintScuError, film_session_print
from pacs.models import Job
from pacs.services.jobs import JobFailed, JobProgress
from printing.models import Film, PrintJob
from printing.services import files
from printing.services.context import IMAGE_SEQUENCE, dataset_from_json

logger = logging.getLogger(__name__)

# Per-association references are rebuilt by the SCU for the printer's own instances.
_NOT_FORWARDED = {
    "ReferencedPresentationLUTSequence",
    "ReferencedFilmSessionSequence",
    "ReferencedImageBoxSequence",
    "ReferencedBasicAnnotationBoxSequence",
}


def _without_references(data: dict) -> Dataset:
    ds = dataset_from_json(data)
    for keyword in _NOT_FORWARDED:
        if keyword in ds:
            del ds[keyword]
    return ds


def film_to_print(film: Film) -> FilmToPrint:
    """The Film Box N-CREATE and Image Box N-SET datasets of a printed film."""
    image_boxes: dict[int, Dataset] = {}
    for snapshot in film.image_boxes:
        if not snapshot["pixel_file"]:
            continue
        modifications = _without_references(snapshot["attributes"])
        item = dcmread(files.absolute_path(snapshot["pixel_file"]), force=True)
        image = Dataset()
        for elem in item:
            image.add(elem)
        setattr(modifications, IMAGE_SEQUENCE[snapshot["sop_class_uid"]], [image])
        modifications.ImageBoxPosition = snapshot["position"]
        image_boxes[snapshot["position"]] = modifications
    film_box = _without_references(film.film_box)
    film_box.ImageDisplayFormat = film.image_display_format
    film_box.FilmOrientation = film.film_orientation
    film_box.FilmSizeID = film.film_size_id
    lut = dataset_from_json(film.presentation_lut) if film.presentation_lut else None
    annotations = {item["position"]: item["text"] for item in film.annotations or []}
    return FilmToPrint(film_box=film_box, image_boxes=image_boxes, presentation_lut=lut, annotations=annotations)


def _calling_aet(node: RemoteNode) -> str:
    if node.calling_aet:
        return node.calling_aet
    listener = Listener.objects.filter(service=ListenerService.PRINT).values_list("ae_title", flat=True).first()
    return listener or settings.PACS_PRINT_AET


def print_forward_run(job: Job, progress: JobProgress) -> dict:
    """Runner of ``print-forward`` jobs: params ``print_job_id``, ``node_id``, ``film_ids``."""
    params = job.params
    print_job = PrintJob.objects.filter(pk=params.get("print_job_id")).first()
    if print_job is None:
        raise JobFailed(f"Print job {params.get('print_job_id')} no longer exists", retry=False)
    node = RemoteNode.objects.filter(pk=params.get("node_id"), is_printer=True).first()
    if node is None:
        raise JobFailed(f"Printer node {params.get('node_id')} no longer exists", retry=False)
    films = list(Film.objects.filter(print_job=print_job, pk__in=params.get("film_ids") or []).order_by("film_number"))
    if not films:
        raise JobFailed(f"Print job {print_job.pk} has none of the films to forward", retry=False)
    try:
        to_print = [film_to_print(film) for film in films]
    except OSError as exc:
        raise JobFailed(f"Received image box pixels are missing: {exc}", retry=False) from exc
    progress.update(total=len(films), done=0, force=True)
    session = _without_references(print_job.attributes)
    try:
        result = film_session_print(
            host=node.host,
            port=node.port,
            called_aet=node.ae_title,
            calling_aet=_calling_aet(node),
            color=print_job.is_color,
            session=session,
            films=to_print,
            on_film=lambda done: progress.update(done=done),
        )
    except PrintScuError as exc:
        raise JobFailed(f"{node.ae_title}: {exc}") from exc
    logger.info("print job forwarded print_job=%s printer=%s films=%d", print_job.pk, node.ae_title, len(films))
    return {**result, "printer": node.ae_title, "print_job_id": print_job.pk}

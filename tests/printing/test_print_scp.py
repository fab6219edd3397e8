"""Print SCP on a live listener with a pynetdicom print SCU: the standard sequence, layouts, color."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread

from pacs.models import Instance, Study
from pacs.storage import absolute_path
from printing.models import Film, FilmBox, PrintJob
from printing.services import files
from printing.services.composition import display_format_parse, film_geometry, layout_rects
from tests.printing.conftest import color_item, gray_item
from tests.polling import eventually

pytestmark = pytest.mark.django_db(transaction=True)

DPI = 50


def film_pixels(film: Film) -> np.ndarray:
    return dcmread(absolute_path(film.instance.file_path)).pixel_array


def box_centres(display_format: str, size: str = "8INX10IN", orientation: str = "PORTRAIT"):
    width, height = film_geometry(film_size_id=size, film_orientation=orientation, dpi=DPI)
    rects = layout_rects(display_format_parse(display_format), width, height, max(1, round(0.08 * DPI)))
    return [(r.y + r.height // 2, r.x + r.width // 2) for r in rects]


def test_standard_sequence_1x1_produces_job_film_preview_and_archived_study(print_listener, print_scu):
    scu = print_scu(print_listener)
    status, printer = scu.printer_status()
    assert status.Status == 0x0000 and printer.PrinterStatus == "NORMAL" and printer.PrinterStatusInfo == "NORMAL"
    status, _ = scu.create_session(FilmSessionLabel="CHEST", NumberOfCopies=2)
    assert status.Status == 0x0000
    film_box, status, reply = scu.create_film_box("STANDARD\\1,1")
    assert status.Status == 0x0000
    assert len(reply.ReferencedImageBoxSequence) == 1 and reply.ReferencedFilmSessionSequence[0].ReferencedSOPInstanceUID == scu.session_uid
    status, _ = scu.set_image(film_box, 1, gray_item(200))
    assert status.Status == 0x0000
    status, action = scu.print_film_box(film_box)
    assert status.Status == 0x0000
    print_job_uid = action.ReferencedPrintJobSequence[0].ReferencedSOPInstanceUID
    status, job_status = scu.print_job_status(print_job_uid)
    assert status.Status == 0x0000 and job_status.ExecutionStatus == "DONE"
    assert scu.delete_film_box(film_box).Status == 0x0000
    assert scu.delete_session().Status == 0x0000
    scu.release()

    job = PrintJob.objects.get()
    assert (job.status, job.calling_aet, job.called_aet, job.peer_address) == ("DONE", "MODALITY", "PRINTSCP", "127.0.0.1")
    assert (job.number_of_films, job.number_of_images, job.number_of_copies, job.film_session_label) == (1, 1, 2, "CHEST")
    assert job.session_closed_at is not None and not FilmBox.objects.exists()
    film = Film.objects.get()
    width, height = film_geometry(film_size_id="8INX10IN", film_orientation="PORTRAIT", dpi=DPI)
    assert (film.columns, film.rows) == (width, height) == (400, 500)
    pixels = film_pixels(film)
    assert pixels.shape == (500, 400)
    assert pixels[250, 200] == 200  # image centre
    assert pixels[0, 0] == 0  # BLACK border
    preview = np.asarray(Image.open(files.absolute_path(film.preview_file)))
    assert np.array_equal(preview, pixels)
    study = Study.objects.get(study_instance_uid=job.study_instance_uid)
    assert study.number_of_study_related_instances == 1
    instance = Instance.objects.get(sop_instance_uid=film.sop_instance_uid)
    assert instance.sop_class_uid == "1.2.840.10008.5.1.4.1.1.7" and instance.series.source_aet == "MODALITY"
    snapshot = film.image_boxes[0]
    assert snapshot["position"] == 1
    kept = dcmread(files.absolute_path(snapshot["pixel_file"]), force=True)
    assert kept.Rows == 24 and bytes(kept.PixelData) == gray_item(200).PixelData

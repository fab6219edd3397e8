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
from tests.polling import eventually
from tests.printing.conftest import color_item, gray_item

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
    assert (
        len(reply.ReferencedImageBoxSequence) == 1
        and reply.ReferencedFilmSessionSequence[0].ReferencedSOPInstanceUID == scu.session_uid
    )
    status = scu.set_image(film_box, 1, gray_item(200))
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
    assert (job.status, job.calling_aet, job.called_aet, job.peer_address) == (
        "DONE",
        "MODALITY",
        "PRINTSCP",
        "127.0.0.1",
    )
    assert (job.number_of_films, job.number_of_images, job.number_of_copies, job.film_session_label) == (
        1,
        1,
        2,
        "CHEST",
    )
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


@pytest.mark.parametrize(
    ("display_format", "count"),
    [("STANDARD\\2,2", 4), ("ROW\\2,3", 5), ("COL\\1,2", 3), ("STANDARD\\3,1", 3)],
)
def test_layouts_put_each_distinct_image_in_its_box(print_listener, print_scu, display_format, count):
    scu = print_scu(print_listener)
    scu.create_session()
    film_box, status, reply = scu.create_film_box(display_format)
    assert status.Status == 0x0000 and len(reply.ReferencedImageBoxSequence) == count
    levels = [40 + 40 * n for n in range(count)]
    for position, level in enumerate(levels, start=1):
        assert scu.set_image(film_box, position, gray_item(level)).Status == 0x0000
    assert scu.print_film_box(film_box)[0].Status == 0x0000
    scu.release()
    film = Film.objects.get()
    pixels = film_pixels(film)
    assert [int(pixels[y, x]) for y, x in box_centres(display_format)] == levels
    assert film.image_display_format == display_format and film.number_of_images == count
    assert [box["position"] for box in film.image_boxes] == list(range(1, count + 1))


def test_row_layout_geometry_rows_hold_the_declared_counts(print_listener, print_scu):
    scu = print_scu(print_listener)
    scu.create_session()
    film_box, _, _ = scu.create_film_box("ROW\\2,3", size="14INX17IN", orientation="LANDSCAPE")
    for position in range(1, 6):
        scu.set_image(film_box, position, gray_item(50 * position, rows=30, columns=30))
    scu.print_film_box(film_box)
    scu.release()
    pixels = film_pixels(Film.objects.get())
    assert pixels.shape == (round(355.6 / 25.4 * DPI), round(431.8 / 25.4 * DPI))  # landscape: long edge across
    centres = box_centres("ROW\\2,3", "14INX17IN", "LANDSCAPE")
    assert centres[0][0] == centres[1][0] < centres[2][0] == centres[3][0] == centres[4][0]  # 2 on top, 3 below
    assert [int(pixels[y, x]) for y, x in centres] == [50, 100, 150, 200, 250]


def test_color_session_composes_rgb_film(print_listener, print_scu):
    scu = print_scu(print_listener, color=True)
    scu.create_session()
    film_box, status, reply = scu.create_film_box("STANDARD\\2,1")
    assert reply.ReferencedImageBoxSequence[0].ReferencedSOPClassUID == "1.2.840.10008.5.1.1.4.1"
    assert scu.set_image(film_box, 1, color_item((255, 0, 0), planar=1)).Status == 0x0000
    assert scu.set_image(film_box, 2, color_item((0, 0, 255), planar=0)).Status == 0x0000
    assert scu.print_film_box(film_box)[0].Status == 0x0000
    scu.release()
    film = Film.objects.get()
    ds = dcmread(absolute_path(film.instance.file_path))
    assert ds.PhotometricInterpretation == "RGB" and ds.SamplesPerPixel == 3
    (y1, x1), (y2, x2) = box_centres("STANDARD\\2,1")
    assert ds.pixel_array[y1, x1].tolist() == [255, 0, 0] and ds.pixel_array[y2, x2].tolist() == [0, 0, 255]
    assert PrintJob.objects.get().is_color


def test_12_bit_monochrome1_reverse_polarity_and_densities(print_listener, print_scu):
    scu = print_scu(print_listener)
    scu.create_session()
    film_box, status, reply = scu.create_film_box(
        "STANDARD\\3,1", BorderDensity="WHITE", EmptyImageDensity="160", MinDensity=20, MaxDensity=300
    )
    assert (reply.BorderDensity, reply.EmptyImageDensity) == ("WHITE", "160")
    scu.set_image(film_box, 1, gray_item(4095, bits=12))  # full scale 12-bit -> white
    scu.set_image(film_box, 2, gray_item(0, bits=12, photometric="MONOCHROME1"))  # MONOCHROME1 0 -> white
    scu.set_image(film_box, 3, gray_item(255), Polarity="REVERSE")  # reversed white -> black
    scu.print_film_box(film_box)
    scu.release()
    pixels = film_pixels(Film.objects.get())
    assert [int(pixels[y, x]) for y, x in box_centres("STANDARD\\3,1")] == [255, 255, 0]
    assert pixels[0, 0] == 255  # WHITE border
    # Each box is a tall strip; the 24x20 image fills its width and the rest of the box shows
    # the Empty Image Density (160 = 1.6 OD between Min 0.2 and Max 3.0 OD).
    y, x = box_centres("STANDARD\\3,1")[0]
    empty = round((300 - 160) / (300 - 20) * 255)
    assert pixels[4 + 1, x] == empty  # top of the first box, above the image


def test_several_film_boxes_printed_by_one_session_action(print_listener, print_scu):
    scu = print_scu(print_listener)
    scu.create_session()
    first, _, _ = scu.create_film_box("STANDARD\\1,1")
    second, _, _ = scu.create_film_box("STANDARD\\1,2", size="10INX12IN")
    scu.set_image(first, 1, gray_item(10))
    scu.set_image(second, 1, gray_item(20))
    scu.set_image(second, 2, gray_item(30))
    status, action = scu.print_session()
    assert (
        status.Status == 0x0000
        and action.ReferencedPrintJobSequence[0].ReferencedSOPClassUID == "1.2.840.10008.5.1.1.14"
    )
    scu.release()
    job = PrintJob.objects.get()
    assert (job.status, job.number_of_films, job.number_of_images) == ("DONE", 2, 3)
    one, two = Film.objects.order_by("film_number")
    assert (one.film_box_uid, two.film_box_uid, two.film_size_id) == (first, second, "10INX12IN")
    assert one.print_job_sop_instance_uid == two.print_job_sop_instance_uid
    assert [int(film_pixels(two)[y, x]) for y, x in box_centres("STANDARD\\1,2", "10INX12IN")] == [20, 30]
    assert Study.objects.get().number_of_study_related_instances == 2


def test_empty_film_box_prints_with_empty_page_warning(print_listener, print_scu):
    scu = print_scu(print_listener)
    scu.create_session()
    film_box, _, _ = scu.create_film_box("STANDARD\\2,2", EmptyImageDensity="WHITE")
    status, _ = scu.print_film_box(film_box)
    assert status.Status == 0xB603
    scu.release()
    pixels = film_pixels(Film.objects.get())
    assert all(pixels[y, x] == 255 for y, x in box_centres("STANDARD\\2,2"))


def test_presentation_lut_is_referenced_and_kept_with_the_film(print_listener, print_scu):
    from pydicom.dataset import Dataset
    from pynetdicom.sop_class import PresentationLUT

    scu = print_scu(print_listener)
    lut = Dataset()
    lut.PresentationLUTShape = "IDENTITY"
    lut_uid = "1.2.826.0.1.3680043.8.498.7777"
    status, _ = scu.assoc.send_n_create(lut, PresentationLUT, lut_uid)
    assert status.Status == 0x0000
    scu.create_session()
    ref = Dataset()
    ref.ReferencedSOPClassUID = PresentationLUT
    ref.ReferencedSOPInstanceUID = lut_uid
    film_box, status, _ = scu.create_film_box("STANDARD\\1,1", ReferencedPresentationLUTSequence=[ref])
    assert status.Status == 0x0000
    scu.set_image(film_box, 1, gray_item(90))
    scu.print_film_box(film_box)
    assert scu.assoc.send_n_delete(PresentationLUT, lut_uid).Status == 0x0000
    scu.release()
    assert Film.objects.get().presentation_lut["20500020"]["Value"] == ["IDENTITY"]


def test_association_end_closes_session_and_keeps_films(print_listener, print_scu):
    scu = print_scu(print_listener)
    scu.create_session()
    film_box, _, _ = scu.create_film_box("STANDARD\\1,1")
    scu.set_image(film_box, 1, gray_item(90))
    scu.print_film_box(film_box)
    scu.release()
    job = eventually(lambda: PrintJob.objects.filter(session_closed_at__isnull=False).first())
    assert job.status == "DONE" and Film.objects.count() == 1 and not FilmBox.objects.exists()


def test_scp_assigned_uids_are_answered_and_usable(print_listener, print_folder):
    """N-CREATE without Affected SOP Instance UID: the SCP assigns one and returns it in the response."""
    from pydicom.dataset import Dataset
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import BasicFilmBox, BasicFilmSession, BasicGrayscalePrintManagementMeta

    created = []

    def on_response(event):
        command = event.message.command_set
        if command.CommandField == 0x8140:  # N-CREATE-RSP
            created.append(command.AffectedSOPInstanceUID)

    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(BasicGrayscalePrintManagementMeta)
    meta = BasicGrayscalePrintManagementMeta
    assoc = ae.associate(
        "127.0.0.1", print_listener, ae_title="PRINTSCP", evt_handlers=[(evt.EVT_DIMSE_RECV, on_response)]
    )
    session = Dataset()
    session.NumberOfCopies = 1
    assert assoc.send_n_create(session, BasicFilmSession, None, meta_uid=meta)[0].Status == 0x0000
    box = Dataset()
    box.ImageDisplayFormat = "STANDARD\\1,1"
    box.FilmSizeID = "8INX10IN"
    ref = Dataset()
    ref.ReferencedSOPClassUID = BasicFilmSession
    ref.ReferencedSOPInstanceUID = created[0]
    box.ReferencedFilmSessionSequence = [ref]
    status, reply = assoc.send_n_create(box, BasicFilmBox, None, meta_uid=meta)
    assert status.Status == 0x0000 and "AffectedSOPInstanceUID" not in reply
    image_box = reply.ReferencedImageBoxSequence[0]
    modification = Dataset()
    modification.ImageBoxPosition = 1
    modification.BasicGrayscaleImageSequence = [gray_item(33)]
    assert (
        assoc.send_n_set(
            modification, image_box.ReferencedSOPClassUID, image_box.ReferencedSOPInstanceUID, meta_uid=meta
        )[0].Status
        == 0x0000
    )
    assert assoc.send_n_action(None, 1, BasicFilmBox, created[1], meta_uid=meta)[0].Status == 0x0000
    assoc.release()
    job = PrintJob.objects.get()
    assert job.film_session_uid == created[0] and Film.objects.get().film_box_uid == created[1]


def test_big_endian_16_bit_image_box_is_byte_swapped_correctly(print_listener, print_folder):
    from pydicom.dataset import Dataset
    from pydicom.uid import ExplicitVRBigEndian, generate_uid
    from pynetdicom import AE
    from pynetdicom.sop_class import BasicFilmBox, BasicFilmSession, BasicGrayscalePrintManagementMeta

    meta = BasicGrayscalePrintManagementMeta
    ae = AE(ae_title="OLDCT")
    ae.add_requested_context(meta, [ExplicitVRBigEndian])
    assoc = ae.associate("127.0.0.1", print_listener, ae_title="PRINTSCP")
    assert assoc.accepted_contexts[0].transfer_syntax[0] == ExplicitVRBigEndian
    session_uid, box_uid = generate_uid(), generate_uid()
    session = Dataset()
    session.NumberOfCopies = 1
    assert assoc.send_n_create(session, BasicFilmSession, session_uid, meta_uid=meta)[0].Status == 0x0000
    box = Dataset()
    box.ImageDisplayFormat = "STANDARD\\1,1"
    box.FilmSizeID = "8INX10IN"
    ref = Dataset()
    ref.ReferencedSOPClassUID = BasicFilmSession
    ref.ReferencedSOPInstanceUID = session_uid
    box.ReferencedFilmSessionSequence = [ref]
    status, reply = assoc.send_n_create(box, BasicFilmBox, box_uid, meta_uid=meta)
    item = gray_item(0, bits=12)
    item.PixelData = np.full((24, 20), 0x0100, dtype="<u2").tobytes()  # 256 of 4095; a wrong swap reads 1
    modification = Dataset()
    modification.BasicGrayscaleImageSequence = [item]
    image_box = reply.ReferencedImageBoxSequence[0]
    assert (
        assoc.send_n_set(
            modification, image_box.ReferencedSOPClassUID, image_box.ReferencedSOPInstanceUID, meta_uid=meta
        )[0].Status
        == 0x0000
    )
    assert assoc.send_n_action(None, 1, BasicFilmBox, box_uid, meta_uid=meta)[0].Status == 0x0000
    assoc.release()
    film = Film.objects.get()
    assert int(film_pixels(film)[250, 200]) == round(256 / 4095 * 255)
    kept = dcmread(files.absolute_path(film.image_boxes[0]["pixel_file"]), force=True)
    assert np.frombuffer(kept.PixelData, "<u2")[0] == 0x0100


def test_print_job_n_get_of_unknown_job_is_0112(print_listener, print_scu):
    from pydicom.uid import generate_uid

    scu = print_scu(print_listener)
    status, _ = scu.print_job_status(generate_uid())
    assert status.Status == 0x0112 and status.ErrorComment.startswith("No such Print Job")
    status, printer = scu.printer_status()
    assert status.Status == 0x0000 and set(printer.dir()) == {"PrinterStatus", "PrinterStatusInfo"}


def test_film_session_n_set_updates_the_job(print_listener, print_scu):
    from pydicom.dataset import Dataset
    from pynetdicom.sop_class import BasicFilmSession

    scu = print_scu(print_listener)
    scu.create_session(FilmSessionLabel="FIRST")
    change = Dataset()
    change.NumberOfCopies = 3
    change.FilmSessionLabel = "SECOND"
    change.PrintPriority = "HIGH"
    status, _ = scu.assoc.send_n_set(change, BasicFilmSession, scu.session_uid, meta_uid=scu.meta)
    assert status.Status == 0x0000
    bad = Dataset()
    bad.NumberOfCopies = 0
    status, _ = scu.assoc.send_n_set(bad, BasicFilmSession, scu.session_uid, meta_uid=scu.meta)
    assert status.Status == 0x0106 and "Number of Copies" in status.ErrorComment
    bad = Dataset()
    bad.PatientName = "NOT^SETTABLE"
    status, _ = scu.assoc.send_n_set(bad, BasicFilmSession, scu.session_uid, meta_uid=scu.meta)
    assert status.Status == 0x0105 and "PatientName" in status.ErrorComment
    scu.release()
    job = PrintJob.objects.get()
    assert (job.number_of_copies, job.film_session_label, job.print_priority) == (3, "SECOND", "HIGH")
    assert job.attributes["20000050"]["Value"] == ["SECOND"]


def test_parallel_modalities_print_independent_sessions(print_listener, print_scu):
    import threading

    results = {}

    def modality(name: str, level: int) -> None:
        scu = print_scu(print_listener, calling=name)
        scu.create_session(FilmSessionLabel=name)
        film_box, _, _ = scu.create_film_box("STANDARD\\1,2")
        scu.set_image(film_box, 1, gray_item(level))
        scu.set_image(film_box, 2, gray_item(level + 1))
        results[name] = scu.print_film_box(film_box)[0].Status
        scu.release()

    threads = [threading.Thread(target=modality, args=(f"CT0{n}", 20 * n)) for n in range(1, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == {f"CT0{n}": 0 for n in range(1, 5)}
    for n in range(1, 5):
        job = PrintJob.objects.get(calling_aet=f"CT0{n}")
        assert (job.status, job.film_session_label, job.number_of_images) == ("DONE", f"CT0{n}", 2)
        pixels = film_pixels(job.films.get())
        assert [int(pixels[y, x]) for y, x in box_centres("STANDARD\\1,2")] == [20 * n, 20 * n + 1]


def test_annotation_boxes_are_printed_above_and_below_the_images(print_listener, print_scu):
    from pydicom.uid import generate_uid

    scu = print_scu(print_listener)
    scu.create_session()
    film_box, status, reply = scu.create_film_box(
        "STANDARD\\1,1", AnnotationDisplayFormatID="LABEL", BorderDensity="BLACK"
    )
    assert status.Status == 0x0000 and reply.AnnotationDisplayFormatID == "LABEL"
    assert len(reply.ReferencedBasicAnnotationBoxSequence) == 6
    assert reply.ReferencedBasicAnnotationBoxSequence[0].ReferencedSOPClassUID == "1.2.840.10008.5.1.1.15"
    assert scu.set_annotation(reply, 1, "LEFT TOP").Status == 0x0000
    assert scu.set_annotation(reply, 5, "BOTTOM CENTRE").Status == 0x0000
    wrong = scu.set_annotation(
        reply, 7, "X", uid=reply.ReferencedBasicAnnotationBoxSequence[2].ReferencedSOPInstanceUID
    )
    assert wrong.Status == 0x0106 and "Annotation Position" in wrong.ErrorComment
    assert scu.set_annotation(reply, 3, "X", uid=generate_uid()).Status == 0x0112
    scu.set_image(film_box, 1, gray_item(128))
    assert scu.print_film_box(film_box)[0].Status == 0x0000
    scu.release()
    film = Film.objects.get()
    assert film.annotations == [{"position": 1, "text": "LEFT TOP"}, {"position": 5, "text": "BOTTOM CENTRE"}]
    pixels = film_pixels(film)
    band = round(0.3 * DPI)
    width = pixels.shape[1]
    assert pixels[:band, : width // 3].max() > 128  # white text on the black border, top left
    assert pixels[-band:, width // 3 : 2 * width // 3].max() > 128  # bottom centre
    assert pixels[:band, width // 3 : 2 * width // 3].max() == 0  # nothing at position 2
    assert pixels[pixels.shape[0] // 2, width // 2] == 128  # the image, between the bands

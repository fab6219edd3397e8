"""Print gateway: films forwarded to a second live print listener with their original layout."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom import dcmread

from dimse.models import RemoteNode
from pacs.choices import JobState
from pacs.models import Job
from pacs.services.jobs import job_execute
from pacs.storage import absolute_path
from printing.exceptions import ForwardError
from printing.models import Film, PrintForwardRule, PrintJob
from printing.services import files
from printing.services.print_jobs import print_job_forward
from tests.printing.conftest import color_item, gray_item

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def two_printers(dimse_listener, print_folder):
    """(modality-facing listener port, printer node of a second live print listener)."""
    gateway = dimse_listener("print").port("print")
    printer_port = dimse_listener("print").port("print")
    node = RemoteNode.objects.create(
        ae_title="PRINTSCP",
        host="127.0.0.1",
        port=printer_port,
        is_printer=True,
        calling_aet="GATEWAY",
        is_store_destination=False,
    )
    return gateway, node


def film_pixels(film: Film) -> np.ndarray:
    return dcmread(absolute_path(film.instance.file_path)).pixel_array


def print_two_films(port, print_scu, *, color=False) -> PrintJob:
    scu = print_scu(port, color=color)
    scu.create_session(FilmSessionLabel="GATEWAY TEST", NumberOfCopies=2, MediumType="PAPER")
    first, _, _ = scu.create_film_box(
        "ROW\\2,3",
        size="10INX12IN",
        orientation="LANDSCAPE",
        BorderDensity="WHITE",
        MagnificationType="REPLICATE",
        Trim="YES",
    )
    for position in range(1, 6):
        item = color_item((40 * position, 255 - 40 * position, 7)) if color else gray_item(40 * position)
        attrs = {"Polarity": "REVERSE"} if position == 3 else {}
        assert scu.set_image(first, position, item, **attrs).Status == 0x0000
    second, _, _ = scu.create_film_box("STANDARD\\1,2", EmptyImageDensity="WHITE")
    item = color_item((9, 99, 199)) if color else gray_item(123, bits=12)
    assert scu.set_image(second, 2, item).Status == 0x0000  # position 1 stays empty
    assert scu.print_session()[0].Status == 0x0000
    scu.release()
    return PrintJob.objects.get(calling_aet="MODALITY")


@pytest.mark.parametrize("color", [False, True])
def test_reprint_to_printer_rebuilds_the_same_films(two_printers, print_scu, color):
    gateway, node = two_printers
    original = print_two_films(gateway, print_scu, color=color)
    job = print_job_forward(print_job_id=original.pk, node_id=node.pk, enqueue=False)
    job = job_execute(job_id=job.pk)
    assert job.state == JobState.SUCCESS, job.errors
    assert (job.result["films"], job.result["images"], job.result["printer"]) == (2, 6, "PRINTSCP")
    assert (job.progress_done, job.progress_total) == (2, 2)

    received = PrintJob.objects.get(calling_aet="GATEWAY")
    assert received.status == "DONE" and received.is_color == color
    assert (received.number_of_copies, received.medium_type, received.film_session_label) == (
        2,
        "PAPER",
        "GATEWAY TEST",
    )
    sent_films, got_films = list(original.films.order_by("film_number")), list(received.films.order_by("film_number"))
    assert len(got_films) == 2
    for sent, got in zip(sent_films, got_films, strict=True):
        assert (got.image_display_format, got.film_size_id, got.film_orientation) == (
            sent.image_display_format,
            sent.film_size_id,
            sent.film_orientation,
        )
        for keyword in ("20100100", "20100060", "20100140", "20100110"):  # border, magnification, trim, empty
            assert got.film_box.get(keyword) == sent.film_box.get(keyword)
        assert [(b["position"], bool(b["pixel_file"])) for b in got.image_boxes] == [
            (b["position"], bool(b["pixel_file"])) for b in sent.image_boxes
        ]
        for sent_box, got_box in zip(sent.image_boxes, got.image_boxes, strict=True):
            assert sent_box["attributes"].get("20200020") == got_box["attributes"].get("20200020")  # polarity
            if sent_box["pixel_file"]:
                a = dcmread(files.absolute_path(sent_box["pixel_file"]), force=True)
                b = dcmread(files.absolute_path(got_box["pixel_file"]), force=True)
                assert bytes(a.PixelData) == bytes(b.PixelData)
        assert np.array_equal(film_pixels(sent), film_pixels(got))  # same layout, same film


def test_forward_rule_queues_a_print_forward_job_per_print(two_printers, print_scu):
    gateway, node = two_printers
    PrintForwardRule.objects.create(calling_aet="MODALITY", printer=node)
    PrintForwardRule.objects.create(calling_aet="OTHER", printer=node)
    original = print_two_films(gateway, print_scu)
    job = Job.objects.get(kind="print-forward")
    assert job.params == {
        "print_job_id": original.pk,
        "node_id": node.pk,
        "film_ids": list(original.films.order_by("film_number").values_list("pk", flat=True)),
    }
    assert job_execute(job_id=job.pk).state == JobState.SUCCESS
    received = PrintJob.objects.get(calling_aet="GATEWAY")
    assert received.number_of_films == 2 and received.status == "DONE"
    # The gateway's own forward arrives from GATEWAY: no rule matches it, so no loop.
    assert Job.objects.filter(kind="print-forward").count() == 1


def test_forward_to_unreachable_printer_fails_with_reason_and_retries(two_printers, print_scu, unused_port):
    gateway, node = two_printers
    original = print_two_films(gateway, print_scu)
    node.port = unused_port
    node.save()
    job = print_job_forward(print_job_id=original.pk, node_id=node.pk, enqueue=False)
    job = job_execute(job_id=job.pk)
    assert job.state == JobState.RETRYING and "rejected or failed" in job.errors[-1]
    assert job.next_attempt_at is not None


def test_forward_refused_by_printer_is_a_job_failure(two_printers, print_scu):
    gateway, node = two_printers
    original = print_two_films(gateway, print_scu)
    film = original.films.order_by("film_number").first()
    film.image_display_format = "SLIDE"  # the printer answers 0x0106 to this film box
    film.save()
    job = print_job_forward(print_job_id=original.pk, node_id=node.pk, enqueue=False)
    Job.objects.filter(pk=job.pk).update(max_attempts=1)
    job = job_execute(job_id=job.pk)
    assert job.state == JobState.FAILURE
    assert "Film Box N-CREATE failed with status 0x0106: Image Display Format" in job.errors[-1]
    received = PrintJob.objects.get(calling_aet="GATEWAY")
    assert received.status == "FAILURE" and "SLIDE" in received.failure_reason


def test_forward_only_to_enabled_printer_nodes(two_printers, print_scu):
    gateway, node = two_printers
    original = print_two_films(gateway, print_scu)
    node.is_printer = False
    node.save()
    with pytest.raises(ForwardError):
        print_job_forward(print_job_id=original.pk, node_id=node.pk, enqueue=False)
    assert not Job.objects.exists()


def dcmprscp_config(folder, port: int):
    (folder / "db").mkdir(parents=True)
    config = folder / "dcmprscp.cfg"
    config.write_text(
        "[[GENERAL]]\n"
        f"[DATABASE]\nDirectory = {folder / 'db'}\n"
        f"[PRINT]\nDirectory = {folder / 'spool'}\n"
        f"[APPLICATION]\nLogDirectory = {folder}\n"
        "[[COMMUNICATION]]\n"
        "[FILMPRINTER]\n"
        "Aetitle = FILMPRINTER\n"
        "Description = DCMTK print SCP\n"
        "Hostname = localhost\n"
        f"Port = {port}\n"
        "Type = LOCALPRINTER\n"
        "DisplayFormat = 1,1\\2,2\\2,3\\3,3\n"
        "FilmSizeID = 8INX10IN\\10INX12IN\\14INX17IN\n"
        "MagnificationType = REPLICATE\\BILINEAR\\CUBIC\\NONE\n"
        "MediumType = PAPER\\BLUE FILM\n"
        "FilmDestination = MAGAZINE\\PROCESSOR\n"
        "BorderDensity = 150\\BLACK\\WHITE\n"
        "EmptyImageDensity = BLACK\\WHITE\n"
        "MaxDensity = 320\nMinDensity = 20\n"
        "Supports12Bit = true\nSupportsPresentationLUT = true\nSupportsTrim = true\n"
        "SupportsImageSize = true\nSupportsDecimateCrop = true\n"
        "ImplicitOnly = false\nDisableNewVRs = false\nMaxPDU = 65536\n"
    )
    return config


def test_forward_to_dcmtk_dcmprscp_keeps_the_layout(dimse_listener, print_folder, print_scu, tmp_path, unused_port):
    """DCMTK's print SCP as the film printer: it records the film box and image boxes it received."""
    import socket
    import subprocess

    from tests.polling import eventually

    config = dcmprscp_config(tmp_path / "dcmprscp", unused_port)
    printer = subprocess.Popen(
        ["dcmprscp", "-c", str(config), "-p", "FILMPRINTER"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        eventually(lambda: socket.socket().connect_ex(("127.0.0.1", unused_port)) == 0)
        node = RemoteNode.objects.create(
            ae_title="FILMPRINTER", host="127.0.0.1", port=unused_port, is_printer=True, calling_aet="GATEWAY"
        )
        scu = print_scu(dimse_listener("print").port("print"))
        scu.create_session(MediumType="PAPER")
        film_box, _, _ = scu.create_film_box("STANDARD\\2,2", size="10INX12IN", BorderDensity="WHITE")
        for position, level in enumerate([30, 90, 150, 210], start=1):
            assert scu.set_image(film_box, position, gray_item(level)).Status == 0x0000
        assert scu.print_film_box(film_box)[0].Status == 0x0000
        scu.release()
        original = PrintJob.objects.get()

        job = job_execute(job_id=print_job_forward(print_job_id=original.pk, node_id=node.pk, enqueue=False).pk)
        assert job.state == JobState.SUCCESS, job.errors
        stored = [dcmread(path) for path in (tmp_path / "dcmprscp" / "db").glob("SP_*.dcm")]
        assert len(stored) == 1
        film = stored[0].FilmBoxContentSequence[0]
        assert (film.ImageDisplayFormat, film.FilmSizeID, film.BorderDensity) == ("STANDARD\\2,2", "10INX12IN", "WHITE")
        boxes = sorted(stored[0].ImageBoxContentSequence, key=lambda box: box.ImageBoxPosition)
        assert [box.ImageBoxPosition for box in boxes] == [1, 2, 3, 4]
        levels = []
        for box in boxes:
            reference = box.ReferencedImageSequence[0].ReferencedSOPInstanceUID
            levels.append(int(np.median(dcmread(_hardcopy(tmp_path / "dcmprscp" / "db", reference)).pixel_array)))
        assert levels == [30, 90, 150, 210]
    finally:
        printer.terminate()
        printer.wait(timeout=10)


def _hardcopy(folder, sop_instance_uid):
    for path in folder.glob("HG_*.dcm"):
        if dcmread(path, stop_before_pixels=True).SOPInstanceUID == sop_instance_uid:
            return path
    raise AssertionError(f"no hardcopy image {sop_instance_uid}")


def test_annotations_are_forwarded(two_printers, print_scu):
    gateway, node = two_printers
    scu = print_scu(gateway)
    scu.create_session()
    film_box, _, reply = scu.create_film_box("STANDARD\\2,1", AnnotationDisplayFormatID="LABEL")
    scu.set_annotation(reply, 3, "RIGHT TOP")
    scu.set_annotation(reply, 4, "LEFT BOTTOM")
    scu.set_image(film_box, 1, gray_item(60))
    assert scu.print_film_box(film_box)[0].Status == 0x0000
    scu.release()
    original = PrintJob.objects.get(calling_aet="MODALITY")
    job = job_execute(job_id=print_job_forward(print_job_id=original.pk, node_id=node.pk, enqueue=False).pk)
    assert job.state == JobState.SUCCESS and job.result["annotations_dropped"] == []
    sent, got = original.films.get(), PrintJob.objects.get(calling_aet="GATEWAY").films.get()
    assert (
        got.annotations
        == sent.annotations
        == [{"position": 3, "text": "RIGHT TOP"}, {"position": 4, "text": "LEFT BOTTOM"}]
    )
    assert np.array_equal(film_pixels(sent), film_pixels(got))

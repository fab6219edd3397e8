"""Bad input on the print listener: the right N-* status and Error Comment, the job FAILURE, the listener unaffected."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import (
    BasicFilmBox,
    BasicFilmSession,
    BasicGrayscalePrintManagementMeta,
    Printer,
    Verification,
)

from dimse.models import AllowedCaller, AssociationLog
from printing.models import Film, PrintJob
from tests.polling import eventually
from tests.printing.conftest import COLOR_IMAGE_BOX, GRAYSCALE_IMAGE_BOX, color_item, gray_item

pytestmark = pytest.mark.django_db(transaction=True)


def assert_listener_prints(port, print_scu):
    """A fresh association still prints a film after the failure."""
    scu = print_scu(port)
    scu.create_session()
    film_box, _, _ = scu.create_film_box("STANDARD\\1,1")
    assert scu.set_image(film_box, 1, gray_item(77)).Status == 0x0000
    assert scu.print_film_box(film_box)[0].Status == 0x0000
    scu.release()
    assert PrintJob.objects.filter(status="DONE").count() == 1


def test_n_set_unknown_image_box_is_0112_and_job_failure(print_listener, print_scu):
    scu = print_scu(print_listener)
    scu.create_session()
    scu.create_film_box("STANDARD\\1,1")
    status = scu.set_image_box(GRAYSCALE_IMAGE_BOX, generate_uid(), 1, gray_item(5))
    assert status.Status == 0x0112 and status.ErrorComment.startswith("No such Image Box in this film session")
    job = PrintJob.objects.get()
    assert job.status == "FAILURE" and job.failure_reason.startswith("No such Image Box in this film session")
    scu.release()
    assert_listener_prints(print_listener, print_scu)


@pytest.mark.parametrize(
    "display_format", ["SLIDE", "CUSTOM\\1", "STANDARD\\0,2", "STANDARD\\2", "ROW\\", "GRID\\2,2", "STANDARD\\11,11"]
)
def test_film_box_with_invalid_display_format_is_0106(print_listener, print_scu, display_format):
    scu = print_scu(print_listener)
    scu.create_session()
    _, status, reply = scu.create_film_box(display_format)
    assert status.Status == 0x0106 and reply is None
    assert "Image Display Format" in status.ErrorComment
    job = PrintJob.objects.get()
    assert job.status == "FAILURE" and display_format.split("\\")[0] in job.failure_reason
    # The session is still usable: a valid film box prints.
    film_box, status, _ = scu.create_film_box("STANDARD\\1,1")
    assert status.Status == 0x0000
    scu.set_image(film_box, 1, gray_item(5))
    assert scu.print_film_box(film_box)[0].Status == 0x0000
    scu.release()
    job.refresh_from_db()
    assert job.status == "DONE" and display_format.split("\\")[0] in job.errors[0]


@pytest.mark.parametrize(
    ("item", "fragment"),
    [
        (lambda: _truncated(gray_item(9)), "Pixel Data has 478 bytes"),
        (lambda: gray_item(9, rows=30), None),  # attributes say 30 rows, pixels hold 30x20: fine (control)
        (lambda: _with(gray_item(9), Rows=40), "40 rows"),
        (lambda: _with(gray_item(9), PhotometricInterpretation="RGB"), "MONOCHROME1/2"),
        (lambda: _with(gray_item(9), BitsStored=12, BitsAllocated=16), "Pixel Data has 480 bytes"),
        (lambda: _with(gray_item(9), BitsStored=10, BitsAllocated=16), "12/16 bits stored in 16"),
        (lambda: _without(gray_item(9), "Rows"), "Rows is missing"),
    ],
)
def test_pixel_data_not_matching_its_attributes_is_rejected(print_listener, print_scu, item, fragment):
    scu = print_scu(print_listener)
    scu.create_session()
    film_box, _, _ = scu.create_film_box("STANDARD\\1,1")
    status = scu.set_image(film_box, 1, item())
    job = PrintJob.objects.get()
    if fragment is None:
        assert status.Status == 0x0000 and job.status == "PENDING"
        return
    assert status.Status in (0x0106, 0x0120) and fragment in status.ErrorComment
    assert job.status == "FAILURE" and fragment in job.failure_reason
    # Nothing was kept for the box: printing it gives an empty page, not a damaged image.
    status, _ = scu.print_film_box(film_box)
    assert status.Status == 0xB603
    scu.release()


def _truncated(item):
    item.PixelData = item.PixelData[:-2]  # an odd length would be padded back to 480 on the wire
    return item


def _with(item, **attrs):
    for key, value in attrs.items():
        setattr(item, key, value)
    return item


def _without(item, keyword):
    delattr(item, keyword)
    return item


def test_session_deleted_mid_print(print_listener, print_scu):
    scu = print_scu(print_listener)
    scu.create_session()
    film_box, _, _ = scu.create_film_box("STANDARD\\1,2")
    scu.set_image(film_box, 1, gray_item(5))
    assert scu.delete_session().Status == 0x0000
    status, _ = scu.print_film_box(film_box)
    assert status.Status == 0x0112 and "Film Box" in status.ErrorComment
    status = scu.set_image(film_box, 2, gray_item(6))
    assert status.Status == 0x0112
    job = PrintJob.objects.get()
    assert job.status == "FAILURE"
    assert job.errors[0] == "Film Session deleted (N-DELETE) before any film was printed"
    assert not Film.objects.exists()
    scu.release()
    assert_listener_prints(print_listener, print_scu)


def test_association_aborted_mid_print_fails_the_job(print_listener, print_scu):
    scu = print_scu(print_listener)
    scu.create_session()
    film_box, _, _ = scu.create_film_box("STANDARD\\1,1")
    scu.set_image(film_box, 1, gray_item(5))
    scu.assoc.abort()
    job = eventually(lambda: PrintJob.objects.filter(session_closed_at__isnull=False).first())
    assert job.status == "FAILURE" and job.failure_reason == "Association aborted before any film was printed"
    assert_listener_prints(print_listener, print_scu)


def test_other_protocol_errors(print_listener, print_scu):
    scu = print_scu(print_listener)
    # Film box before any session.
    _, status, _ = scu.create_film_box("STANDARD\\1,1", session_uid=generate_uid())
    assert status.Status == 0x0112 and "Film Session" in status.ErrorComment
    # Printer N-GET of a wrong instance.
    status, _ = scu.assoc.send_n_get([0x21100010, 0x21100020], Printer, generate_uid(), meta_uid=scu.meta)
    assert status.Status == 0x0112
    scu.create_session()
    # Session print without film boxes.
    status, _ = scu.print_session()
    assert status.Status == 0xC600
    # A second film session on the same association.
    second = Dataset()
    second.NumberOfCopies = 1
    status, _ = scu.assoc.send_n_create(second, BasicFilmSession, generate_uid(), meta_uid=scu.meta)
    assert status.Status == 0x0111
    film_box, _, _ = scu.create_film_box("STANDARD\\1,1")
    # Unknown action type, duplicate film box UID, wrong image box class, missing image sequence.
    status, _ = scu.assoc.send_n_action(None, 7, BasicFilmBox, film_box, meta_uid=scu.meta)
    assert status.Status == 0x0123
    _, status, _ = scu.create_film_box("STANDARD\\1,1", uid=film_box)
    assert status.Status == 0x0111
    _, uid = scu.film_boxes[film_box][0]
    status = scu.set_image_box(COLOR_IMAGE_BOX, uid, 1, color_item((1, 2, 3)))
    assert status.Status == 0x0119
    modification = Dataset()
    modification.Polarity = "NORMAL"
    status, _ = scu.assoc.send_n_set(modification, GRAYSCALE_IMAGE_BOX, uid, meta_uid=scu.meta)
    assert status.Status == 0x0000  # attributes alone are allowed; the image comes later
    modification.Polarity = "SIDEWAYS"
    status, _ = scu.assoc.send_n_set(modification, GRAYSCALE_IMAGE_BOX, uid, meta_uid=scu.meta)
    assert status.Status == 0x0106 and "Polarity" in status.ErrorComment
    # Film box N-SET of an attribute that may not change, and of a bad density.
    change = Dataset()
    change.ImageDisplayFormat = "STANDARD\\2,2"
    status, _ = scu.assoc.send_n_set(change, BasicFilmBox, film_box, meta_uid=scu.meta)
    assert status.Status == 0x0105
    change = Dataset()
    change.BorderDensity = "GREY"
    status, _ = scu.assoc.send_n_set(change, BasicFilmBox, film_box, meta_uid=scu.meta)
    assert status.Status == 0x0106
    change.BorderDensity = "WHITE"
    status, _ = scu.assoc.send_n_set(change, BasicFilmBox, film_box, meta_uid=scu.meta)
    assert status.Status == 0x0000
    # Film size and orientation outside the defined terms.
    _, status, _ = scu.create_film_box("STANDARD\\1,1", size="5INX5IN")
    assert status.Status == 0x0106 and "Film Size ID" in status.ErrorComment
    _, status, _ = scu.create_film_box("STANDARD\\1,1", orientation="DIAGONAL")
    assert status.Status == 0x0106
    assert scu.set_image(film_box, 1, gray_item(255)).Status == 0x0000
    assert scu.print_film_box(film_box)[0].Status == 0x0000
    scu.release()
    job = PrintJob.objects.get()
    assert job.status == "DONE" and len(job.errors) >= 8
    assert int(np.asarray(job.number_of_films)) == 1


def test_called_and_calling_ae_checks_apply_to_the_print_listener(dimse_listener, print_folder):
    manager = dimse_listener("print", restrict_callers=True)
    port = manager.port("print")
    AllowedCaller.objects.create(ae_title="MODALITY")
    manager.restart("print")
    port = manager.port("print")
    ae = AE(ae_title="INTRUDER")
    ae.add_requested_context(BasicGrayscalePrintManagementMeta)
    assoc = ae.associate("127.0.0.1", port, ae_title="PRINTSCP")
    assert assoc.is_rejected
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(BasicGrayscalePrintManagementMeta)
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title="WRONGAET")
    assert assoc.is_rejected
    assoc = ae.associate("127.0.0.1", port, ae_title="PRINTSCP")
    assert assoc.is_established and assoc.send_c_echo().Status == 0x0000
    assoc.release()
    assert eventually(lambda: AssociationLog.objects.filter(status="rejected").count() == 2)


def test_archive_full_at_print_is_0110_and_job_failure(print_listener, print_scu):
    from pacs.services.config import archive_config_update

    scu = print_scu(print_listener)
    scu.create_session()
    film_box, _, _ = scu.create_film_box("STANDARD\\1,1")
    scu.set_image(film_box, 1, gray_item(5))
    archive_config_update(min_free_mb=10**9)
    status, _ = scu.print_film_box(film_box)
    assert status.Status == 0x0110 and status.ErrorComment.startswith("Film could not be archived")
    job = PrintJob.objects.get()
    assert job.status == "FAILURE" and "Archive storage is full" in job.failure_reason
    assert not Film.objects.exists()
    archive_config_update(min_free_mb=1)
    status, _ = scu.print_film_box(film_box)  # the same film box prints once there is room
    assert status.Status == 0x0000
    scu.release()
    job.refresh_from_db()
    assert job.status == "DONE" and job.number_of_films == 1


def test_print_folder_unwritable_is_0110_and_job_failure(print_listener, print_scu, print_folder):
    scu = print_scu(print_listener)
    scu.create_session()
    film_box, _, _ = scu.create_film_box("STANDARD\\1,1")
    print_folder.parent.mkdir(parents=True, exist_ok=True)
    print_folder.write_text("a file where the print folder should be")
    status = scu.set_image(film_box, 1, gray_item(5))
    assert status.Status == 0x0110 and status.ErrorComment.startswith("Cannot keep the image box pixels")
    assert PrintJob.objects.get().status == "FAILURE"
    scu.release()


def test_print_job_deleted_while_session_open(print_listener, print_scu):
    from printing.services.print_jobs import print_job_delete

    scu = print_scu(print_listener)
    scu.create_session()
    film_box, _, _ = scu.create_film_box("STANDARD\\1,1")
    print_job_delete(job_id=PrintJob.objects.get().pk)
    status = scu.set_image(film_box, 1, gray_item(5))
    assert status.Status == 0x0112
    status, _ = scu.print_session()
    assert status.Status == 0x0112 and "print job was deleted" in status.ErrorComment
    scu.release()
    assert not PrintJob.objects.exists()
    assert_listener_prints(print_listener, print_scu)

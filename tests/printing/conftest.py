"""Fixtures of the print tests: a temp print folder and a pynetdicom print SCU doing the standard sequence."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import (
    BasicAnnotationBox,
    BasicColorImageBox,
    BasicColorPrintManagementMeta,
    BasicFilmBox,
    BasicFilmSession,
    BasicGrayscaleImageBox,
    BasicGrayscalePrintManagementMeta,
    PresentationLUT,
    Printer,
    PrinterInstance,
    PrintJob,
)


@pytest.fixture
def print_folder(tmp_path, settings):
    """Previews and received pixels under a temp PACS_DATA_DIR; films composed at 50 dpi (small, fast)."""
    settings.PACS_DATA_DIR = tmp_path / "data"
    settings.PACS_PRINT_DPI = 50
    return tmp_path / "data" / "print"


@pytest.fixture
def print_listener(dimse_listener, print_folder):
    """A live print listener; returns its port."""
    return dimse_listener("print").port("print")


def gray_item(
    value: int,
    *,
    rows: int = 24,
    columns: int = 20,
    bits: int = 8,
    photometric: str = "MONOCHROME2",
    pixels: np.ndarray | None = None,
) -> Dataset:
    """A Preformatted Grayscale Image Sequence item filled with *value* (or *pixels*)."""
    item = Dataset()
    item.SamplesPerPixel = 1
    item.PhotometricInterpretation = photometric
    item.Rows, item.Columns = rows, columns
    item.BitsAllocated = 8 if bits == 8 else 16
    item.BitsStored = bits
    item.HighBit = bits - 1
    item.PixelRepresentation = 0
    if pixels is None:
        pixels = np.full((rows, columns), value, dtype=np.uint8 if bits == 8 else np.uint16)
    item.PixelData = pixels.astype(np.uint8 if bits == 8 else "<u2").tobytes()
    return item


def color_item(rgb: tuple[int, int, int], *, rows: int = 24, columns: int = 20, planar: int = 1) -> Dataset:
    item = Dataset()
    item.SamplesPerPixel = 3
    item.PhotometricInterpretation = "RGB"
    item.PlanarConfiguration = planar
    item.Rows, item.Columns = rows, columns
    item.BitsAllocated = item.BitsStored = 8
    item.HighBit = 7
    item.PixelRepresentation = 0
    pixels = np.zeros((rows, columns, 3), dtype=np.uint8)
    pixels[:, :] = rgb
    item.PixelData = (pixels.transpose(2, 0, 1) if planar else pixels).tobytes()
    return item


@dataclass
class PrintSession:
    """A pynetdicom print SCU association with SCU-chosen UIDs (PS3.4 H.4)."""

    assoc: object
    meta: str
    session_uid: str = ""
    film_boxes: dict[str, list] = field(default_factory=dict)

    def printer_status(self):
        return self.assoc.send_n_get([0x21100010, 0x21100020], Printer, PrinterInstance, meta_uid=self.meta)

    def create_session(self, **attrs):
        ds = Dataset()
        ds.NumberOfCopies = 1
        ds.PrintPriority = "MED"
        ds.MediumType = "BLUE FILM"
        ds.FilmDestination = "MAGAZINE"
        for key, value in attrs.items():
            setattr(ds, key, value)
        self.session_uid = generate_uid()
        return self.assoc.send_n_create(ds, BasicFilmSession, self.session_uid, meta_uid=self.meta)

    def create_film_box(
        self,
        display_format: str,
        *,
        size: str = "8INX10IN",
        orientation: str = "PORTRAIT",
        uid: str | None = None,
        session_uid: str | None = None,
        **attrs,
    ):
        ds = Dataset()
        ds.ImageDisplayFormat = display_format
        ds.FilmOrientation = orientation
        ds.FilmSizeID = size
        for key, value in attrs.items():
            setattr(ds, key, value)
        ref = Dataset()
        ref.ReferencedSOPClassUID = BasicFilmSession
        ref.ReferencedSOPInstanceUID = session_uid or self.session_uid
        ds.ReferencedFilmSessionSequence = [ref]
        uid = uid or generate_uid()
        status, reply = self.assoc.send_n_create(ds, BasicFilmBox, uid, meta_uid=self.meta)
        if reply is not None and "ReferencedImageBoxSequence" in reply:
            self.film_boxes[uid] = [
                (item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID) for item in reply.ReferencedImageBoxSequence
            ]
        return uid, status, reply

    def set_image(self, film_box_uid: str, position: int, item: Dataset, **attrs):
        class_uid, uid = self.film_boxes[film_box_uid][position - 1]
        return self.set_image_box(class_uid, uid, position, item, **attrs)

    def set_image_box(self, class_uid, uid, position, item, **attrs):
        """Image Box N-SET; returns the status dataset."""
        ds = Dataset()
        ds.ImageBoxPosition = position
        for key, value in attrs.items():
            setattr(ds, key, value)
        if class_uid == BasicColorImageBox:
            ds.BasicColorImageSequence = [item]
        else:
            ds.BasicGrayscaleImageSequence = [item]
        return self.assoc.send_n_set(ds, class_uid, uid, meta_uid=self.meta)[0]

    def set_annotation(self, reply, position: int, text: str, *, uid: str | None = None):
        """Annotation Box N-SET of *position* of a film box N-CREATE *reply*; returns the status."""
        ds = Dataset()
        ds.AnnotationPosition = position
        ds.TextString = text
        item = reply.ReferencedBasicAnnotationBoxSequence[min(position, 6) - 1]
        return self.assoc.send_n_set(ds, BasicAnnotationBox, uid or item.ReferencedSOPInstanceUID)[0]

    def print_film_box(self, uid: str):
        return self.assoc.send_n_action(None, 1, BasicFilmBox, uid, meta_uid=self.meta)

    def print_session(self):
        return self.assoc.send_n_action(None, 1, BasicFilmSession, self.session_uid, meta_uid=self.meta)

    def delete_film_box(self, uid: str):
        return self.assoc.send_n_delete(BasicFilmBox, uid, meta_uid=self.meta)

    def delete_session(self):
        return self.assoc.send_n_delete(BasicFilmSession, self.session_uid, meta_uid=self.meta)

    def print_job_status(self, uid: str):
        return self.assoc.send_n_get([0x21000020, 0x21000030], PrintJob, uid)

    def release(self):
        self.assoc.release()


@pytest.fixture
def print_scu():
    """``print_scu(port, color=False, calling="MODALITY")`` -> an established :class:`PrintSession`."""
    sessions = []

    def _open(port: int, *, color: bool = False, calling: str = "MODALITY", called: str = "PRINTSCP"):
        ae = AE(ae_title=calling)
        meta = BasicColorPrintManagementMeta if color else BasicGrayscalePrintManagementMeta
        ae.add_requested_context(meta)
        ae.add_requested_context(PresentationLUT)
        ae.add_requested_context(PrintJob)
        ae.add_requested_context(BasicAnnotationBox)
        assoc = ae.associate("127.0.0.1", port, ae_title=called)
        assert assoc.is_established
        session = PrintSession(assoc=assoc, meta=meta)
        sessions.append(session)
        return session

    yield _open
    for session in sessions:
        if session.assoc.is_established:
            session.assoc.release()


GRAYSCALE_IMAGE_BOX = BasicGrayscaleImageBox
COLOR_IMAGE_BOX = BasicColorImageBox


@pytest.fixture
def unused_port() -> int:
    """A TCP port nothing listens on (bound then closed)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]

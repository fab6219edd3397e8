"""DCMTK as the modality: dcmpsprt renders a print job from images, dcmprscu prints it to the live listener."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread

from pacs.storage import absolute_path
from printing.models import Film, PrintJob
from printing.services import files
from printing.services.composition import display_format_parse, film_geometry, layout_rects
from tests import dicom_factories as f

pytestmark = pytest.mark.django_db(transaction=True)

DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}
DPI = 50
PYDICOM_ROOT = "1.2.826.0.1.3680043.8.498."


def dcmpstat_cfg(
    folder: Path, port: int, *, calling: str = "MODALITY", called: str = "PRINTSCP", extra: str = ""
) -> Path:
    """A minimal dcmpstat.cfg naming the live print listener as the only printer."""
    for name in ("db", "spool", "log"):
        (folder / name).mkdir(exist_ok=True)
    config = folder / "dcmpstat.cfg"
    config.write_text(
        "[[GENERAL]]\n"
        "[DATABASE]\n"
        f"Directory = {folder / 'db'}\n"
        "[PRINT]\n"
        "Spooler = dcmprscu\n"
        f"Directory = {folder / 'spool'}\n"
        "DetailedLog = false\n"
        "[APPLICATION]\n"
        f"LogDirectory = {folder / 'log'}\n"
        "[NETWORK]\n"
        f"aetitle = {calling}\n"
        "[[COMMUNICATION]]\n"
        "[PACS]\n"
        f"Aetitle = {called}\n"
        "Description = PACS print listener\n"
        "Hostname = 127.0.0.1\n"
        f"Port = {port}\n"
        "Type = PRINTER\n"
        "MaxPDU = 65536\n"
        "DisplayFormat = 1,1\\2,2\\3,3\n"
        "FilmSizeID = 8INX10IN\\14INX17IN\n"
        "MagnificationType = REPLICATE\\BILINEAR\\CUBIC\\NONE\n"
        "MediumType = BLUE FILM\\PAPER\n"
        "FilmDestination = MAGAZINE\\PROCESSOR\n"
        "BorderDensity = BLACK\\WHITE\n"
        "EmptyImageDensity = BLACK\\WHITE\n"
        "Supports12Bit = true\n"
        "SupportsPresentationLUT = true\n"
        "SupportsTrim = true\n"
        "SupportsImageSize = false\n"
        "SupportsDecimateCrop = false\n" + extra
    )
    return config


def level_image(folder: Path, level: int, number: int) -> Path:
    """An 8-bit secondary capture at *level*, with one 0 and one 255 pixel so min-max VOI is the identity."""
    pixels = np.full((32, 32), level, dtype=np.uint8)
    pixels[0, 0], pixels[0, 1] = 0, 255
    ds = f.ct_dataset(modality="OT", bits=8, size=32, instance_number=number)
    ds.PixelData = pixels.tobytes()
    ds.WindowCenter, ds.WindowWidth = 127.5, 256
    path = folder / f"level{number}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def run(cmd: list[str], timeout: int = 60) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=DCMTK_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_dcmpsprt_spooled_job_printed_by_dcmprscu_2x2(print_listener, tmp_path, settings):
    settings.PACS_PRINT_DPI = DPI
    config = dcmpstat_cfg(tmp_path, print_listener)
    levels = [40, 100, 160, 220]
    images = [level_image(tmp_path, level, n) for n, level in enumerate(levels, start=1)]
    run(
        [
            "dcmpsprt",
            "-c",
            str(config),
            "-p",
            "PACS",
            "--spool",
            "--layout",
            "2",
            "2",
            "--filmsize",
            "8INX10IN",
            "--portrait",
            "--border",
            "WHITE",
            "--copies",
            "2",
            "--label",
            "DCMTK JOB",
            *map(str, images),
        ]
    )
    # dcmpsprt wrote the stored print + hardcopy images and spooled a job and a "terminate" job.
    jobs = sorted((tmp_path / "spool").glob("*.job"))
    assert len(jobs) == 2 and "copies       2" in jobs[0].read_text()
    prefix = jobs[0].name.split("_")[0]  # <prefix>_<printer>_<number>.job
    result = run(["dcmprscu", "-c", str(config), "-p", "PACS", "--spool", prefix, "--sleep", "1"])
    assert "error" not in result.stderr.lower(), result.stderr
    assert not list((tmp_path / "spool").glob("*.job"))  # the spooler consumed both

    job = PrintJob.objects.get()
    assert (job.status, job.calling_aet, job.number_of_films, job.number_of_images) == ("DONE", "MODALITY", 1, 4)
    assert (job.number_of_copies, job.film_session_label) == (2, "DCMTK JOB")
    film = Film.objects.get()
    assert (film.image_display_format, film.film_size_id, film.film_orientation) == (
        "STANDARD\\2,2",
        "8INX10IN",
        "PORTRAIT",
    )
    pixels = dcmread(absolute_path(film.instance.file_path)).pixel_array
    width, height = film_geometry(film_size_id="8INX10IN", film_orientation="PORTRAIT", dpi=DPI)
    rects = layout_rects(display_format_parse("STANDARD\\2,2"), width, height, 4)
    centres = [int(pixels[r.y + r.height // 2, r.x + r.width // 2]) for r in rects]
    assert all(abs(got - want) <= 3 for got, want in zip(centres, levels, strict=True)), centres
    assert pixels[1, 1] == 255  # WHITE border
    assert job.session_closed_at is not None
    # dcmprscu lets the SCP assign every UID (ours carry pydicom's generate_uid prefix), negotiates
    # 12-bit images and an IDENTITY Presentation LUT referenced by the film box.
    assert film.film_box_uid.startswith(PYDICOM_ROOT) and job.film_session_uid.startswith(PYDICOM_ROOT)
    assert film.presentation_lut["20500020"]["Value"] == ["IDENTITY"]
    kept = dcmread(files.absolute_path(film.image_boxes[0]["pixel_file"]), force=True)
    assert (kept.BitsStored, kept.BitsAllocated) == (12, 16)


def test_dcmprscu_session_print_landscape_monochrome1(print_listener, tmp_path, settings):
    """dcmprscu in print mode: film session N-ACTION, MONOCHROME1 transfer, 3x3 landscape on 14x17."""
    settings.PACS_PRINT_DPI = DPI
    config = dcmpstat_cfg(tmp_path, print_listener, calling="CT01")
    levels = [30, 60, 90, 120, 150, 180, 210, 240, 250]
    images = [level_image(tmp_path, level, n) for n, level in enumerate(levels, start=1)]
    run(
        [
            "dcmpsprt",
            "-c",
            str(config),
            "-p",
            "PACS",
            "--layout",
            "3",
            "3",
            "--filmsize",
            "14INX17IN",
            "--landscape",
            *map(str, images),
        ]
    )
    stored_print = next((tmp_path / "db").glob("SP_*.dcm"))
    result = run(
        [
            "dcmprscu",
            "-c",
            str(config),
            "-p",
            "PACS",
            "--session-print",
            "--monochrome1",
            "--copies",
            "3",
            "--priority",
            "HIGH",
            "--medium-type",
            "PAPER",
            str(stored_print),
        ]
    )
    assert "error" not in result.stderr.lower(), result.stderr

    job = PrintJob.objects.get()
    assert (job.status, job.calling_aet, job.number_of_copies, job.print_priority, job.medium_type) == (
        "DONE",
        "CT01",
        3,
        "HIGH",
        "PAPER",
    )
    film = Film.objects.get()
    assert (film.image_display_format, film.film_size_id, film.film_orientation) == (
        "STANDARD\\3,3",
        "14INX17IN",
        "LANDSCAPE",
    )
    kept = dcmread(files.absolute_path(film.image_boxes[0]["pixel_file"]), force=True)
    assert kept.PhotometricInterpretation == "MONOCHROME1"
    pixels = dcmread(absolute_path(film.instance.file_path)).pixel_array
    width, height = film_geometry(film_size_id="14INX17IN", film_orientation="LANDSCAPE", dpi=DPI)
    assert pixels.shape == (height, width) and width > height
    rects = layout_rects(display_format_parse("STANDARD\\3,3"), width, height, 4)
    centres = [int(pixels[r.y + r.height // 2, r.x + r.width // 2]) for r in rects]
    assert all(abs(got - want) <= 3 for got, want in zip(centres, levels, strict=True)), centres


def test_runscp_print_listener_serves_dcmprscu(storage_root, print_folder, tmp_path, monkeypatch):
    """The real ``runscp`` process: its print listener composes what dcmprscu prints."""
    from tests.dimse.test_runscp import Runscp

    monkeypatch.setenv("PACS_DATA_DIR", str(print_folder.parent))
    monkeypatch.setenv("PACS_PRINT_DPI", str(DPI))
    scp = Runscp(storage_root, "--services", "print")
    try:
        config = dcmpstat_cfg(tmp_path, scp.ports["print"], calling="CR01")
        images = [level_image(tmp_path, level, n) for n, level in enumerate([70, 140], start=1)]
        run(
            [
                "dcmpsprt",
                "-c",
                str(config),
                "-p",
                "PACS",
                "--layout",
                "2",
                "1",
                "--filmsize",
                "8INX10IN",
                *map(str, images),
            ]
        )
        run(["dcmprscu", "-c", str(config), "-p", "PACS", str(next((tmp_path / "db").glob("SP_*.dcm")))])
        job = PrintJob.objects.get()
        assert (job.status, job.calling_aet, job.number_of_films) == ("DONE", "CR01", 1)
        film = Film.objects.get()
        preview = files.absolute_path(film.preview_file)
        assert preview.exists() and preview.is_relative_to(print_folder)
        pixels = dcmread(absolute_path(film.instance.file_path)).pixel_array
        width, height = film_geometry(film_size_id="8INX10IN", film_orientation="PORTRAIT", dpi=DPI)
        rects = layout_rects(display_format_parse("STANDARD\\2,1"), width, height, 4)
        centres = [int(pixels[r.y + r.height // 2, r.x + r.width // 2]) for r in rects]
        assert all(abs(got - want) <= 3 for got, want in zip(centres, [70, 140], strict=True)), centres
    finally:
        assert scp.stop() == 0


def test_dcmprscu_annotation_box(print_listener, tmp_path, settings):
    """dcmpsprt --annotation with a printer entry offering annotation position 2 of format ANNOTATION."""
    settings.PACS_PRINT_DPI = DPI
    config = dcmpstat_cfg(tmp_path, print_listener, extra="Annotation = 2\\ANNOTATION\n")
    images = [level_image(tmp_path, 100, 1)]
    run(
        [
            "dcmpsprt",
            "-c",
            str(config),
            "-p",
            "PACS",
            "--annotation",
            "FROM DCMTK",
            "--print-no-date",
            "--print-no-name",
            "--print-no-lighting",
            *map(str, images),
        ]
    )
    result = run(["dcmprscu", "-c", str(config), "-p", "PACS", str(next((tmp_path / "db").glob("SP_*.dcm")))])
    assert "error" not in result.stderr.lower(), result.stderr
    film = Film.objects.get()
    assert film.film_box["20100030"]["Value"] == ["ANNOTATION"]
    assert film.annotations == [{"position": 2, "text": "FROM DCMTK"}]

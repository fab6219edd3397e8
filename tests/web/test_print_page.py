"""Print job pages in a real browser: jobs made by the real Print SCP, listed, filtered, detailed,
previewed, downloaded, forwarded to a second live print listener and deleted."""

from __future__ import annotations

import datetime
import io
import re
import zipfile

import numpy as np
import pytest
import requests
from PIL import Image
from playwright.sync_api import expect
from pydicom import dcmread
from pydicom.uid import SecondaryCaptureImageStorage

from dimse.models import RemoteNode
from pacs.choices import JobState
from pacs.models import Job
from pacs.services.jobs import job_execute
from printing.models import PrintJob
from printing.services import files
from tests.polling import eventually
from tests.printing.conftest import color_item, gray_item, print_folder, print_scu  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db(transaction=True)


def print_films(port, print_scu, *, calling: str, label: str, formats=("STANDARD\\2,2",), color=False) -> PrintJob:  # noqa: F811
    """One film session from *calling*, a film box per display format, each box a distinct level."""
    scu = print_scu(port, calling=calling, color=color)
    scu.create_session(FilmSessionLabel=label, NumberOfCopies=2, MediumType="BLUE FILM")
    for display_format in formats:
        film_box, _status, _reply = scu.create_film_box(display_format, BorderDensity="WHITE")
        for position in range(1, len(scu.film_boxes[film_box]) + 1):
            item = color_item((60 * position % 256, 40, 200)) if color else gray_item(50 * position)
            assert scu.set_image(film_box, position, item).Status == 0x0000
    assert scu.print_session()[0].Status == 0x0000
    scu.release()
    return PrintJob.objects.get(calling_aet=calling)


@pytest.fixture
def printers(dimse_listener, print_folder):  # noqa: F811
    """(port of the print listener the modalities use, printer node of a second live print listener)."""
    gateway = dimse_listener("print").port("print")
    printer_port = dimse_listener("print").port("print")
    node = RemoteNode.objects.create(ae_title="PRINTSCP", host="127.0.0.1", port=printer_port, is_printer=True,
                                     calling_aet="GATEWAY", is_store_destination=False)
    return gateway, node


@pytest.fixture
def jobs(printers, print_scu):  # noqa: F811
    port, _node = printers
    chest = print_films(port, print_scu, calling="CT01", label="CHEST FILMS", formats=("STANDARD\\2,2", "ROW\\1,2"))
    echo = print_films(port, print_scu, calling="US01", label="<img src=x onerror=alert(1)>", color=True,
                       formats=("STANDARD\\1,1",))
    scu = print_scu(port, calling="MR01")
    scu.create_session(FilmSessionLabel="NEVER PRINTED")
    scu.release()  # nothing printed: FAILURE
    return {"chest": chest, "echo": echo, "failed": PrintJob.objects.get(calling_aet="MR01")}


@pytest.fixture
def browser_page(logged_in, monkeypatch):
    """The logged-in page, with live_server's request threads closing their database connection per request.

    Chromium keeps its keep-alive sockets (film images) open past the test, so their request threads
    outlive it; with PostgreSQL's persistent connections (CONN_MAX_AGE) each would still hold a session
    when the test database is dropped.  The threads share this settings dict.
    """
    from django.db import connection

    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 0)
    return logged_in


def _aets(page) -> list[str]:
    return page.locator("#print-table .calling-aet").all_inner_texts()


def _image_loaded(page, selector: str) -> bool:
    return page.eval_on_selector(selector, "img => img.complete && img.naturalWidth > 0")


def test_list_filter_details_preview_download_forward_delete(browser_page, jobs, printers, screenshot):
    page = browser_page
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    chest, echo, failed = jobs["chest"], jobs["echo"], jobs["failed"]

    page.click(".mainnav a:has-text('Print')")
    page.wait_for_url(re.compile(r"/print/$"))
    assert _aets(page) == ["MR01", "US01", "CT01"]  # newest first
    eventually(lambda: page.eval_on_selector_all(".film-thumb", "imgs => imgs.every(i => i.complete)"))
    assert page.eval_on_selector_all(".film-thumb", "imgs => imgs.map(i => i.naturalWidth > 0)") == [True, True]
    echo_row = page.locator("tr.print-row", has_text="US01")
    assert echo_row.locator(".session-label").inner_text() == "<img src=x onerror=alert(1)>"  # text, not markup
    assert page.locator("#print-table .session-label img").count() == 0
    assert page.locator("tr.print-row", has_text="MR01").locator(".job-status").inner_text() == "Failure"
    screenshot(page, "print-list")

    # Filters: state, calling AE, free text, date ranges.
    yesterday = (datetime.date.today() - datetime.timedelta(days=1)).isoformat()
    for query, expected in [
        ("status=FAILURE", ["MR01"]),
        ("status=DONE", ["US01", "CT01"]),
        ("calling_aet=ct01", ["CT01"]),
        ("q=chest", ["CT01"]),
        ("q=blue+film", ["MR01", "US01", "CT01"]),
        ("q=never", ["MR01"]),
        ("range=today", ["MR01", "US01", "CT01"]),
        (f"date_to={yesterday}", []),
        (f"date_from={datetime.date.today().isoformat()}&status=DONE&calling_aet=US01", ["US01"]),
    ]:
        page.goto(f"/print/?{query}")
        assert _aets(page) == expected, query
    page.goto("/print/")
    page.select_option("#p-status", "DONE")
    page.fill("#p-aet", "CT01")
    page.click("#search-button")
    assert _aets(page) == ["CT01"]
    assert page.locator(".pager").inner_text().startswith("Page 1 of 1")

    # Details: session, association, printer settings, films with image boxes.
    page.click(".print-details")
    page.wait_for_url(re.compile(rf"/print/{chest.pk}/$"))
    assert page.locator("#session-label").inner_text() == "CHEST FILMS"
    assert page.locator("#calling-aet").inner_text() == "CT01"
    assert "Started" in page.locator("#association").inner_text()  # the audit log entry of the association
    assert page.locator("section.film").count() == 2
    assert page.locator("#film-1 .image-box-row").count() == 4
    assert page.locator("#film-2 .image-box-row").count() == 3  # ROW\\1,2: one box in row 1, two in row 2
    assert "20 × 24, 8 bit" in page.locator("#film-1 .image-box-row").first.inner_text()  # columns × rows received
    assert "BorderDensity" in page.locator("#film-1 .settings").inner_text()
    page.click("#session-attributes summary")
    assert "FilmSessionLabel" in page.locator("#session-attributes").inner_text()
    eventually(lambda: page.eval_on_selector_all(".film-image", "imgs => imgs.every(i => i.complete)"))
    assert _image_loaded(page, "#film-1 .film-image")
    screenshot(page, "print-detail")

    # The film preview is the composed film: four distinct levels in a 2x2 layout, not a blank page.
    response = page.request.get(f"/print/{chest.pk}/films/1/preview.png")
    assert response.status == 200 and response.headers["content-type"] == "image/png"
    pixels = np.asarray(Image.open(io.BytesIO(response.body())).convert("L"))
    assert pixels.std() > 10 and len(np.unique(pixels)) >= 4
    thumb = page.request.get(f"/print/{chest.pk}/films/1/preview.png?size=160")
    assert max(Image.open(io.BytesIO(thumb.body())).size) == 160
    assert page.request.get(f"/print/{chest.pk}/films/9/preview.png").status == 404
    anonymous = requests.get(page.url.split("/print/")[0] + f"/print/{chest.pk}/films/1/preview.png",
                             allow_redirects=False, timeout=10)
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous.headers["Location"]

    # Download: the job as a zip (film PNGs, archived DICOM films, JSON), one film as DICOM.
    # (Fetched through the page's own request context, with its session: a download started by a click
    # is owned by the browser, whose keep-alive socket would outlive the test and its database.)
    zipped = page.request.get(page.get_attribute("#download-zip", "href"))
    assert zipped.status == 200 and zipped.headers["content-type"] == "application/zip"
    assert zipped.headers["content-disposition"] == f'attachment; filename="print-job-{chest.pk}.zip"'
    with zipfile.ZipFile(io.BytesIO(zipped.body())) as archive:
        assert sorted(archive.namelist()) == ["film-1.dcm", "film-1.png", "film-2.dcm", "film-2.png", "print-job.json"]
        film = dcmread(io.BytesIO(archive.read("film-2.dcm")))
        assert film.SOPClassUID == SecondaryCaptureImageStorage
        assert b'"film_session_uid"' in archive.read("print-job.json")
    dicom = page.request.get(page.get_attribute("#film-1 .film-dicom", "href"))
    assert dicom.status == 200 and "attachment" in dicom.headers["content-disposition"]
    assert dcmread(io.BytesIO(dicom.body())).SOPInstanceUID == chest.films.get(film_number=1).sop_instance_uid
    png = page.request.get(page.get_attribute("#film-2 .film-png", "href"))
    assert png.status == 200 and "attachment" in png.headers["content-disposition"]
    assert Image.open(io.BytesIO(png.body())).size == (400, 500)  # 8x10 in at the tests' 50 dpi

    # Forward to the second live print listener: a print-forward job, run here (no qcluster in tests).
    _port, node = printers
    page.select_option("#id_node", str(node.pk))
    page.click("#forward-button")
    page.wait_for_url(re.compile(rf"/print/{chest.pk}/#forwards$"))
    assert page.locator(".message-success").inner_text().startswith("Forward job")
    forward = Job.objects.get(kind="print-forward")
    assert forward.params["print_job_id"] == chest.pk and forward.params["node_id"] == node.pk
    assert job_execute(job_id=forward.pk).state == JobState.SUCCESS
    reprinted = PrintJob.objects.get(calling_aet="GATEWAY")
    assert (reprinted.status, reprinted.number_of_films, reprinted.film_session_label) == ("DONE", 2, "CHEST FILMS")
    page.reload()
    assert page.locator("#forward-jobs .forward-state").inner_text() == "Success"
    screenshot(page, "print-forwarded")

    # Delete from the details page (confirmed): rows and the job's files go.
    folder = files.absolute_path(files.job_folder_relative(chest.pk))
    assert folder.is_dir()
    page.click("#delete-job")
    page.wait_for_url(re.compile(r"/print/$"))
    assert page.locator(".message-success").is_visible()
    assert not PrintJob.objects.filter(pk=chest.pk).exists() and not folder.exists()
    # And from the list.
    page.locator("tr.print-row", has_text="MR01").locator(".print-delete").click()
    page.wait_for_url(re.compile(r"/print/$"))
    assert _aets(page) == ["GATEWAY", "US01"]
    assert not PrintJob.objects.filter(pk=failed.pk).exists()
    assert len(dialogs) == 2


def test_forward_needs_a_printer_and_shows_why(browser_page, jobs, printers):
    page = browser_page
    _port, node = printers
    RemoteNode.objects.filter(pk=node.pk).update(enabled=False)
    page.goto(f"/print/{jobs['chest'].pk}/")
    assert "No printer node" in page.locator("#forwards").inner_text()
    RemoteNode.objects.filter(pk=node.pk).update(enabled=True)
    page.goto(f"/print/{jobs['failed'].pk}/")
    assert "no printed film" in page.locator("#forwards").inner_text()
    # A node that stopped being a printer between page load and submit: the error is shown, no job queued.
    page.goto(f"/print/{jobs['chest'].pk}/")
    RemoteNode.objects.filter(pk=node.pk).update(is_printer=False)
    page.select_option("#id_node", str(node.pk))
    page.click("#forward-button")
    assert page.locator("#forward-errors").is_visible() and page.locator(".message-error").is_visible()
    assert not Job.objects.filter(kind="print-forward").exists()


def test_print_pages_need_login_and_permissions(client, django_user_model, jobs, printers):
    chest = jobs["chest"]
    viewer = django_user_model.objects.create_user("printviewer", "", "viewer-pw-123")
    assert client.get("/print/").status_code == 302
    assert client.get(f"/print/{chest.pk}/download/").status_code == 302
    client.force_login(viewer)
    listing = client.get("/print/")
    assert listing.status_code == 200 and listing.content.count(b'class="print-row"') == 3
    assert b"print-delete" not in listing.content
    assert client.get(f"/print/{chest.pk}/").status_code == 200
    assert client.post(f"/print/{chest.pk}/delete/").status_code == 403
    assert client.post(f"/print/{chest.pk}/forward/", {"node": printers[1].pk}).status_code == 403
    assert client.get("/print/999999/").status_code == 404
    assert PrintJob.objects.filter(pk=chest.pk).exists() and not Job.objects.exists()


def test_print_list_query_count_is_constant(client, admin_user, jobs, django_assert_max_num_queries):
    client.force_login(admin_user)
    with django_assert_max_num_queries(8):  # session, user, count, page, films: not one per row
        response = client.get("/print/")
    assert response.status_code == 200 and response.content.count(b'class="print-row"') == 3


def test_chinese_interface(browser_page, jobs, screenshot):
    page = browser_page
    page.select_option("#language-select", "zh-hans")
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    page.goto("/print/")
    assert page.locator("h1").inner_text().startswith("打印任务")
    page.goto(f"/print/{jobs['chest'].pk}/")
    assert "胶片" in page.locator("#film-1 h2").inner_text()
    assert page.locator("#job-status").inner_text() == "已完成"
    screenshot(page, "print-detail-zh", full_page=False)

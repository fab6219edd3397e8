"""Print job REST API with requests against live_server: list/filters, detail, preview, DICOM, re-print, delete."""

from __future__ import annotations

import io

import numpy as np
import pytest
import requests
from PIL import Image
from pydicom import dcmread

from dimse.models import RemoteNode
from pacs.models import Instance, Job
from pacs.services.jobs import job_execute
from printing.models import PrintJob
from printing.services import files
from tests.printing.conftest import gray_item

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "print-pw-123"


@pytest.fixture
def users(django_user_model):
    admin = django_user_model.objects.create_superuser("printadmin", "", PASSWORD)
    viewer = django_user_model.objects.create_user("printviewer", "", PASSWORD)
    return admin, viewer


def session_for(live_server, user) -> requests.Session:
    http = requests.Session()
    http.auth = (user.username, PASSWORD)
    http.url = lambda path: live_server.url + path
    return http


def print_films(port, print_scu, *, calling="MODALITY", formats=("STANDARD\\2,1",)) -> PrintJob:
    scu = print_scu(port, calling=calling)
    scu.create_session(FilmSessionLabel=f"{calling} LABEL")
    for display_format in formats:
        film_box, _, _ = scu.create_film_box(display_format)
        scu.set_image(film_box, 1, gray_item(111))
        assert scu.print_film_box(film_box)[0].Status == 0x0000
    scu.release()
    return PrintJob.objects.get(calling_aet=calling)


def test_list_filters_detail_preview_and_dicom(
    dimse_listener, print_folder, print_scu, live_server, users, client, django_assert_max_num_queries
):
    port = dimse_listener("print").port("print")
    first = print_films(port, print_scu, calling="CT01", formats=("STANDARD\\2,1", "ROW\\1,2"))
    print_films(port, print_scu, calling="MR01")
    scu = print_scu(port, calling="US01")
    scu.create_session()
    scu.release()  # nothing printed -> FAILURE
    http = session_for(live_server, users[0])

    body = http.get(http.url("/api/print-jobs/")).json()
    assert body["count"] == 3
    assert [job["calling_aet"] for job in body["results"]] == ["US01", "MR01", "CT01"]
    assert http.get(http.url("/api/print-jobs/?calling_aet=CT01")).json()["count"] == 1
    failed = http.get(http.url("/api/print-jobs/?status=FAILURE")).json()["results"]
    assert [job["calling_aet"] for job in failed] == ["US01"]
    assert failed[0]["failure_reason"] == "Association released before any film was printed"
    assert http.get(http.url("/api/print-jobs/?status=NOPE")).status_code == 400

    detail = http.get(http.url(f"/api/print-jobs/{first.pk}/")).json()
    assert (detail["number_of_films"], detail["film_session_label"], detail["status"]) == (2, "CT01 LABEL", "DONE")
    assert [film["image_display_format"] for film in detail["films"]] == ["STANDARD\\2,1", "ROW\\1,2"]
    assert detail["films"][1]["image_boxes"][0]["position"] == 1

    response = http.get(live_server.url + detail["films"][1]["preview_url"])
    assert response.status_code == 200 and response.headers["Content-Type"] == "image/png"
    preview = np.asarray(Image.open(io.BytesIO(response.content)))
    response = http.get(live_server.url + detail["films"][1]["dicom_url"])
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/dicom"
    ds = dcmread(io.BytesIO(response.content))
    assert np.array_equal(ds.pixel_array, preview) and ds.SOPInstanceUID == detail["films"][1]["sop_instance_uid"]
    assert http.get(http.url(f"/api/print-jobs/{first.pk}/preview/?film=9")).status_code == 404
    assert http.get(http.url(f"/api/print-jobs/{first.pk}/preview/?film=x")).status_code == 400

    client.force_login(users[0])
    with django_assert_max_num_queries(6):  # session, user, count, jobs, films
        assert client.get("/api/print-jobs/").status_code == 200


def test_authentication_and_permissions(dimse_listener, print_folder, print_scu, live_server, users):
    port = dimse_listener("print").port("print")
    job = print_films(port, print_scu)
    assert requests.get(live_server.url + "/api/print-jobs/").status_code in (401, 403)
    assert requests.get(live_server.url + f"/api/print-jobs/{job.pk}/preview/").status_code in (401, 403)
    viewer = session_for(live_server, users[1])
    assert viewer.get(viewer.url("/api/print-jobs/")).json()["count"] == 1
    assert viewer.delete(viewer.url(f"/api/print-jobs/{job.pk}/")).status_code == 403
    assert viewer.post(viewer.url(f"/api/print-jobs/{job.pk}/reprint/"), json={"node": 1}).status_code == 403
    assert PrintJob.objects.filter(pk=job.pk).exists()


def test_reprint_to_a_printer_node_and_delete(dimse_listener, print_folder, print_scu, live_server, users):
    port = dimse_listener("print").port("print")
    printer_port = dimse_listener("print").port("print")
    job = print_films(port, print_scu, formats=("STANDARD\\2,1", "STANDARD\\1,1"))
    node = RemoteNode.objects.create(
        ae_title="PRINTSCP", host="127.0.0.1", port=printer_port, is_printer=True, calling_aet="GATEWAY"
    )
    store = RemoteNode.objects.create(ae_title="STORE", host="127.0.0.1", port=1, is_printer=False)
    http = session_for(live_server, users[0])

    response = http.post(http.url(f"/api/print-jobs/{job.pk}/reprint/"), json={"node": store.pk})
    assert response.status_code == 400 and "not an enabled printer" in response.json()["node"][0]
    response = http.post(http.url(f"/api/print-jobs/{job.pk}/reprint/"), json={"node": node.pk, "films": [7]})
    assert response.status_code == 400
    response = http.post(http.url(f"/api/print-jobs/{job.pk}/reprint/"), json={"node": node.pk, "films": [2]})
    assert response.status_code == 201, response.text
    forward = response.json()
    assert forward["kind"] == "print-forward" and forward["params"]["film_ids"] == [job.films.get(film_number=2).pk]
    assert job_execute(job_id=forward["id"]).state == "success"
    received = PrintJob.objects.get(calling_aet="GATEWAY")
    assert [film.image_display_format for film in received.films.all()] == ["STANDARD\\1,1"]

    folder = files.absolute_path(files.job_folder_relative(job.pk))
    assert folder.exists()
    sop_uids = list(job.films.values_list("sop_instance_uid", flat=True))
    assert http.delete(http.url(f"/api/print-jobs/{job.pk}/")).status_code == 204
    assert not PrintJob.objects.filter(pk=job.pk).exists() and not folder.exists()
    # The composed films stay in the archive as studies.
    assert Instance.objects.filter(sop_instance_uid__in=sop_uids).count() == 2
    assert Job.objects.get(pk=forward["id"]).state == "success"


def test_admin_pages(dimse_listener, print_folder, print_scu, users, client):
    port = dimse_listener("print").port("print")
    job = print_films(port, print_scu)
    client.force_login(users[0])
    assert "MODALITY" in client.get("/admin/printing/printjob/").content.decode()
    page = client.get(f"/admin/printing/printjob/{job.pk}/change/")
    assert page.status_code == 200 and "STANDARD\\2,1" in page.content.decode()
    assert client.get("/admin/printing/printforwardrule/add/").status_code == 200
    response = client.post(f"/admin/printing/printjob/{job.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302 and not PrintJob.objects.exists()
    assert not files.absolute_path(files.job_folder_relative(job.pk)).exists()

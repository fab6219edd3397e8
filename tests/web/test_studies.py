"""Study list in a real browser: filters, sorting, paging, actions (edit, delete, zip, send, Weasis)."""

from __future__ import annotations

import re
import zipfile
from urllib.parse import unquote

import pytest
import requests

from tests.polling import eventually

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def three_studies(archive):
    return [
        archive(count=1, patient_id="PA1", patient_name="ALPHA^ANN", AccessionNumber="ACC-A", StudyDate="20240105",
                modality="CT", origin_aet="CT_ROOM1"),
        archive(count=2, patient_id="PB2", patient_name="BETA^BOB", AccessionNumber="ACC-B", StudyDate="20240310",
                modality="MR", origin_aet="MR_ROOM2"),
        archive(count=1, patient_id="PC3", patient_name="WANG^XIAOMING=王^小明", AccessionNumber="ACC-C",
                SpecificCharacterSet="ISO_IR 192",
                StudyDate="20240620", modality="CT", origin_aet="CT_ROOM1"),
    ]


def _names(page) -> list[str]:
    return page.locator("#study-table .patient-name").all_inner_texts()


def test_study_list_filters_sorting_and_paging(logged_in, three_studies, django_assert_max_num_queries,
                                               screenshot):
    page = logged_in
    page.goto("/")
    assert len(_names(page)) == 3
    assert _names(page)[0].startswith("王小明")  # newest first; Chinese name shown in its Unicode form
    screenshot(page, "study-list")
    page.fill("#f-name", "bet*")
    page.click("#search-button")
    assert _names(page) == ["BETA BOB"]
    page.goto("/?patient_name=王")
    assert len(_names(page)) == 1
    page.goto("/?modality=CT")
    assert len(_names(page)) == 2
    page.goto("/?calling_aet=MR_ROOM2")
    assert _names(page) == ["BETA BOB"]
    page.goto("/?date_from=2024-03-01&date_to=2024-06-30")
    assert len(_names(page)) == 2
    page.goto("/?accession=ACC-A")
    assert _names(page) == ["ALPHA ANN"]
    page.goto("/?range=today")
    assert page.locator("#study-table .empty").is_visible()
    # Sorting by name, then reversed by a second click.
    page.goto("/")
    page.click("a[data-sort=name]")
    assert _names(page)[0] == "ALPHA ANN"
    page.click("a[data-sort=name]")
    assert _names(page)[-1] == "ALPHA ANN"
    # Paging.
    page.goto("/?per_page=25")
    assert page.locator(".pager").inner_text().startswith("Page 1 of 1")
    # Counts and sizes.
    row = page.locator("tr.study-row", has_text="BETA BOB")
    assert row.locator("td.num").nth(1).inner_text() == "2"
    assert "KB" in row.locator("td.num").nth(2).inner_text()


def test_study_list_query_count_is_constant(client, admin_user, archive, django_assert_max_num_queries):
    for i in range(6):
        archive(count=1, patient_id=f"Q{i}")
    client.force_login(admin_user)
    with django_assert_max_num_queries(12):  # session, user, count, page, nodes: not one per row
        response = client.get("/")
    assert response.status_code == 200 and response.content.count(b"study-row") == 6


def test_row_expands_to_series_with_thumbnails(logged_in, archive):
    uids = archive(count=2, series=2)
    logged_in.goto("/")
    logged_in.locator(".expand-toggle").first.click()
    cards = logged_in.locator(".series-card")
    cards.first.wait_for()
    assert cards.count() == 2
    eventually(lambda: logged_in.evaluate(
        "() => [...document.querySelectorAll('.series-card img')].every(i => i.complete && i.naturalWidth > 0)"))
    assert uids["series"][0] in cards.first.get_attribute("href")


def test_edit_demographics_writes_files_and_index(logged_in, archive, screenshot):
    from pydicom import dcmread

    from pacs import storage
    from pacs.models import Instance, Study

    uids = archive(count=2, patient_name="OLD^NAME", AccessionNumber="ACC-OLD")
    logged_in.goto("/")
    logged_in.locator("tr.study-row").first.locator("text=Edit").click()
    logged_in.fill("#id_PatientName", "NEW^NAME")
    logged_in.fill("#id_AccessionNumber", "ACC-NEW")
    screenshot(logged_in, "study-edit")
    logged_in.click("#study-edit-form button[type=submit]")
    logged_in.wait_for_url(re.compile(r"accession=ACC-NEW"))
    assert _names(logged_in) == ["NEW NAME"]
    study = Study.objects.select_related("patient").get(study_instance_uid=uids["study"])
    assert study.accession_number == "ACC-NEW" and study.patient.patient_name == "NEW^NAME"
    for instance in Instance.objects.filter(series__study=study):
        ds = dcmread(storage.absolute_path(instance.file_path), stop_before_pixels=True)
        assert ds.PatientName == "NEW^NAME" and ds.AccessionNumber == "ACC-NEW"


def test_delete_asks_first_then_removes_rows_and_files(logged_in, archive):
    from pacs import storage
    from pacs.models import Instance, Study

    uids = archive(count=2)
    paths = [storage.absolute_path(p) for p in Instance.objects.values_list("file_path", flat=True)]
    logged_in.goto("/")
    logged_in.once("dialog", lambda d: d.dismiss())
    logged_in.locator(".study-delete").first.click()
    assert Study.objects.filter(study_instance_uid=uids["study"]).exists()
    logged_in.once("dialog", lambda d: d.accept())
    logged_in.locator(".study-delete").first.click()
    logged_in.locator(".messages").wait_for()
    assert not Study.objects.filter(study_instance_uid=uids["study"]).exists()
    assert not any(p.exists() for p in paths)


def test_download_zip(logged_in, archive):
    uids = archive(count=3)
    logged_in.goto("/")
    with logged_in.expect_download() as info:
        logged_in.locator("tr.study-row").first.locator("text=ZIP").click()
    with zipfile.ZipFile(info.value.path()) as archive_file:
        names = archive_file.namelist()
    assert len(names) == 3 and all(uids["study"] in n for n in names)


def test_send_selected_studies_to_a_node_as_a_job(logged_in, archive, dimse_listener, screenshot):
    from dimse.models import RemoteNode
    from pacs.models import Job
    from pacs.services.jobs import job_execute

    manager = dimse_listener("storage")
    node = RemoteNode.objects.create(ae_title="STORESCP", host="127.0.0.1", port=manager.port("storage"))
    uids = archive(count=2)
    logged_in.goto("/")
    logged_in.locator(f"input.study-select[value='{uids['study']}']").check()
    logged_in.select_option("#send-node", str(node.pk))
    logged_in.click("#send-button")
    logged_in.wait_for_url(re.compile(r"/send/$"))
    job = Job.objects.get(kind="send")
    assert job.params == {"node": "STORESCP", "study_instance_uids": [uids["study"]]}
    job_execute(job_id=job.pk)  # what the django-q2 worker runs
    row = logged_in.locator(f"tr[data-job-id='{job.pk}']")
    eventually(lambda: "Success" in row.inner_text(), timeout=15)
    assert "2/2" in row.inner_text()
    screenshot(logged_in, "send-job-progress")


def test_weasis_launch_and_manifest(logged_in, archive, live_server):
    uids = archive(count=2)
    logged_in.goto("/")
    href = logged_in.locator("tr.study-row").first.locator("text=Weasis").get_attribute("href")
    cookies = {c["name"]: c["value"] for c in logged_in.context.cookies()}
    launch = requests.get(live_server.url + href, cookies=cookies, allow_redirects=False, timeout=10)
    assert launch.status_code == 302 and launch.headers["Location"].startswith("weasis://")
    manifest_url = re.search(r'-w "([^"]+)"', unquote(launch.headers["Location"][len("weasis://"):])).group(1)
    manifest = requests.get(manifest_url, timeout=10)  # no session: Weasis has only the signed URL
    assert manifest.status_code == 200 and manifest.headers["Content-Type"].startswith("application/xml")
    assert manifest.text.count("<Instance ") == 2 and uids["study"] in manifest.text
    assert 'key="Authorization"' in manifest.text
    tampered = requests.get(manifest_url.replace("token=", "token=x"), timeout=10)
    assert tampered.status_code == 403

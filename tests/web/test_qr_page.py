"""Query/Retrieve page in a real browser against a real remote PACS (Orthanc) and a real job cluster.

Orthanc (Debian package) is the remote node: it holds generated studies our
archive does not have, answers C-FIND and C-MOVEs to our Storage listener (or
answers C-GET).  The page's jobs run on a real ``manage.py qcluster`` against
the test database, exactly as in production: view -> job_create -> django-q2
ORM broker -> cluster -> dimse.jobs runner.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import expect
from pydicom import dcmread

from pacs.choices import JobState
from pacs.models import Instance, Job
from pacs.storage import absolute_path
from tests import dicom_factories as f
from tests.dimse.qr_support import free_port, node_add
from tests.dimse.test_scu_orthanc import ORTHANC, Orthanc
from tests.web.conftest import _database_url

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not Path(ORTHANC).exists(), reason="Orthanc is not installed (apt-get install orthanc)"),
]

ROOT = Path(__file__).resolve().parents[2]
JOB_TIMEOUT = 90  # the cluster's start-up (a few seconds) + the DIMSE work on a shared 2-core box
XSS_NAME = "<script>alert(1)</script>^EVIL"
XSS_DESCRIPTION = "<img src=x onerror=alert(2)>"


@pytest.fixture
def job_cluster(transactional_db, storage_root):
    """A real ``manage.py qcluster`` (one worker) on the test database; stopped at teardown."""
    env = {**os.environ, "DATABASE_URL": _database_url(), "PACS_STORAGE_ROOT": str(storage_root),
           "PACS_MIN_FREE_MB": "1", "PACS_JOB_WORKERS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    threading.Thread(target=lambda: output.extend(proc.stdout), daemon=True).start()
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture
def remote_pacs(dimse_listener, tmp_path):
    """Orthanc as the remote node ``ORTHANC`` (query/retrieve role); it can C-MOVE to our Storage AE."""
    manager = dimse_listener("storage")
    peer = Orthanc(tmp_path, "STORESCP", manager.port("storage"))
    node_add("ORTHANC", peer.dicom_port, is_query_source=True)
    yield peer
    peer.stop()


def _upload_study(peer: Orthanc, *, series: int = 1, count: int = 2, **kwargs) -> dict:
    """Generate a study and store it in Orthanc only; return its UIDs."""
    study_uid, series_uids, sops = None, [], []
    for s in range(series):
        series_uid = None
        for i in range(count):
            ds = f.ct_dataset(study_uid=study_uid, series_uid=series_uid, instance_number=i + 1,
                              SeriesNumber=s + 1, SeriesDescription=f"SERIES {s + 1}", **kwargs)
            study_uid, series_uid = ds.StudyInstanceUID, ds.SeriesInstanceUID
            data = f.encode(ds)
            sops.append(dcmread(io.BytesIO(data)).SOPInstanceUID)
            peer.upload(data)
        series_uids.append(series_uid)
    return {"study": study_uid, "series": series_uids, "sops": sops}


def _archived(study_uid: str, series_uid: str | None = None) -> list[Instance]:
    rows = Instance.objects.filter(series__study__study_instance_uid=study_uid)
    if series_uid:
        rows = rows.filter(series__series_instance_uid=series_uid)
    return list(rows)


def _assert_stored(instances: list[Instance]) -> None:
    """Each instance is a readable file in the archive with the pixels that were generated."""
    for instance in instances:
        path = absolute_path(instance.file_path)
        assert path.is_file()
        ds = dcmread(path)
        assert ds.SOPInstanceUID == instance.sop_instance_uid
        expected = f.ct_dataset(instance_number=ds.InstanceNumber).pixel_array
        assert np.array_equal(ds.pixel_array, expected)


def _search(page, **fields) -> None:
    page.goto("/qr/")
    for selector, value in fields.items():
        page.fill(selector, value)
    page.click("#qr-search")


def test_query_expand_and_retrieve_into_the_archive(logged_in, remote_pacs, job_cluster, screenshot):
    page = logged_in
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    alpha = _upload_study(remote_pacs, series=2, count=2, patient_id="QR-1", patient_name="ALPHA^ANN",
                          StudyDescription="CT CHEST", StudyDate="20240105", AccessionNumber="QRACC1")
    evil = _upload_study(remote_pacs, series=2, count=1, patient_id="QR-2", patient_name=XSS_NAME,
                         StudyDescription=XSS_DESCRIPTION, StudyDate="20240210")
    _upload_study(remote_pacs, patient_id="ELSEWHERE", patient_name="OTHER^ONE")
    assert not Instance.objects.exists()

    # Query by patient ID with a wildcard: a waiting state, then two rows (newest first).
    _search(page, **{"#qr-pid": "QR-*"})
    assert "job=" in page.url and page.locator("#qr-pid").input_value() == "QR-*"
    if page.locator("#qr-waiting").is_visible():
        screenshot(page, "qr-waiting")
    rows = page.locator("tr.qr-study-row")
    rows.first.wait_for(timeout=JOB_TIMEOUT * 1000)
    assert rows.count() == 2
    assert page.locator("#qr-count").inner_text().startswith("2 studies found on ORTHANC")
    alpha_row = page.locator(f"tr.qr-study-row[data-study-uid='{alpha['study']}']")
    evil_row = page.locator(f"tr.qr-study-row[data-study-uid='{evil['study']}']")
    assert rows.nth(0).get_attribute("data-study-uid") == evil["study"]
    cells = alpha_row.locator("td").all_inner_texts()
    assert cells[2:11] == ["ALPHA ANN", "QR-1", "1980-01-01", "2024-01-05 10:15", "CT CHEST", "QRACC1", "CT", "2", "4"]
    # Remote (attacker-controlled) values render as text, never as markup.
    assert evil_row.locator(".patient-name").inner_text() == "<script>alert(1)</script> EVIL"
    assert evil_row.locator(".qr-description").inner_text() == XSS_DESCRIPTION
    assert page.locator("#qr-results script, #qr-results img").count() == 0
    screenshot(page, "qr-results")

    # Patient name without wildcard: a trailing * is added (ALPHA -> ALPHA*).
    _search(page, **{"#qr-name": "ALPHA"})
    page.locator("tr.qr-study-row").first.wait_for(timeout=JOB_TIMEOUT * 1000)
    assert page.locator("tr.qr-study-row").count() == 1
    query = Job.objects.filter(kind="query").order_by("-id").first()
    assert query.params["filters"] == {"PatientName": "ALPHA*"}

    # Expand the study: a series-level query on the same node.
    page.click(f"tr.qr-study-row[data-study-uid='{alpha['study']}'] .qr-expand")
    series_rows = page.locator("tr.qr-series-row")
    series_rows.first.wait_for(timeout=JOB_TIMEOUT * 1000)
    assert series_rows.count() == 2
    assert series_rows.nth(1).locator("td").all_inner_texts()[:5] == ["2", "CT", "SERIES 2", "", "2"]
    screenshot(page, "qr-series")

    # Retrieve the whole study with C-MOVE (the default): live progress, then the archive link.
    page.click(f"tr.qr-study-row[data-study-uid='{alpha['study']}'] .qr-retrieve-one")
    retrieval = page.locator("tr.qr-retrieval").first
    retrieval.locator(".qr-link a").wait_for(timeout=JOB_TIMEOUT * 1000)
    assert retrieval.locator(".qr-state").inner_text() == "Success"
    assert retrieval.locator(".qr-counts").inner_text() == "4/4"
    assert "ALPHA ANN" in retrieval.inner_text() and "C-MOVE" in retrieval.inner_text()
    assert page.locator(f"tr.qr-study-row[data-study-uid='{alpha['study']}'] .qr-in-archive").is_visible()
    assert page.locator("tr.qr-series-row .qr-in-archive").count() == 2  # the open expansion follows
    screenshot(page, "qr-retrieved")
    job = Job.objects.get(pk=int(retrieval.get_attribute("data-job-id")))
    assert job.state == JobState.SUCCESS and job.params["method"] == "move"
    stored = _archived(alpha["study"])
    assert sorted(i.sop_instance_uid for i in stored) == sorted(alpha["sops"])
    _assert_stored(stored)

    # The archive link opens the study in our viewer.
    href = retrieval.locator(".qr-link a").get_attribute("href")
    assert href == f"/viewer/{alpha['study']}/"

    # A reload marks the row as already in the archive (server side).
    page.reload()
    assert page.locator(f"tr.qr-study-row[data-study-uid='{alpha['study']}'] .qr-in-archive").inner_text() \
        == "In archive"

    # One series of the other study with C-GET.
    _search(page, **{"#qr-pid": "QR-*"})
    evil_row = page.locator(f"tr.qr-study-row[data-study-uid='{evil['study']}']")
    evil_row.wait_for(timeout=JOB_TIMEOUT * 1000)
    assert evil_row.locator(".qr-archive").inner_text() == ""
    page.select_option("#qr-method", "get")
    evil_row.locator(".qr-expand").click()
    second = page.locator(f"tr.qr-series-row[data-series-uid='{evil['series'][1]}']")
    second.wait_for(timeout=JOB_TIMEOUT * 1000)
    second.locator(".qr-retrieve-one").click()
    second.locator(".qr-in-archive").wait_for(timeout=JOB_TIMEOUT * 1000)
    job = Job.objects.filter(kind="retrieve").order_by("-id").first()
    assert job.state == JobState.SUCCESS and job.params["method"] == "get"
    assert job.params["filters"] == {"StudyInstanceUID": evil["study"], "SeriesInstanceUID": evil["series"][1]}
    stored = _archived(evil["study"])
    assert [i.sop_instance_uid for i in stored] == [evil["sops"][1]]
    _assert_stored(stored)
    # The study row now says how much of it we hold; a reload shows "In archive 1/2".
    page.reload()
    assert evil_row.locator(".qr-in-archive").inner_text() == "In archive 1/2"

    # Several selected studies at once: one job each, both end in the archive.
    assert page.locator("#qr-retrieve-selected").is_disabled()
    page.check("#qr-select-all")
    assert page.locator("#qr-selection-count").inner_text() == "2 selected"
    page.select_option("#qr-method", "get")
    page.click("#qr-retrieve-selected")
    expect(page.locator("tr.qr-retrieval")).to_have_count(4)
    expect(page.locator("tr.qr-retrieval[data-finished='0']")).to_have_count(0, timeout=JOB_TIMEOUT * 1000)
    assert Job.objects.filter(kind="retrieve", params__method="get").count() == 3
    assert page.locator("tr.qr-retrieval .qr-state").all_inner_texts() == ["Success"] * 4
    assert page.locator("tr.qr-retrieval .qr-link a").count() == 4
    stored = _archived(evil["study"])
    assert sorted(i.sop_instance_uid for i in stored) == sorted(evil["sops"])
    _assert_stored(stored)
    assert len(_archived(alpha["study"])) == 4  # duplicates kept once (keep-first)
    assert page.locator("#qr-select-all").is_checked() is False
    # The retrieval descriptions carry the remote names too: text again, never markup.
    assert page.locator("#qr-retrievals", has_text="<script>alert(1)</script> EVIL").count() == 1
    assert page.locator("#qr-retrievals script, #qr-retrievals img, #qr-results script, #qr-results img").count() == 0
    assert dialogs == []


def test_unreachable_node_shows_the_error(logged_in, job_cluster, screenshot):
    page = logged_in
    node_add("DEADNODE", free_port(), is_query_source=True)
    node_add("NOTQR", free_port(), is_query_source=False)
    node_add("OFFLINE", free_port(), is_query_source=True, enabled=False)
    page.goto("/qr/")
    options = page.locator("#qr-node option").all_inner_texts()  # enabled nodes with the Q/R role only
    assert len(options) == 1 and options[0].startswith("DEADNODE (127.0.0.1:")
    page.click("button[name=range][value='7days']")
    error = page.locator("#qr-error")
    error.wait_for(timeout=JOB_TIMEOUT * 1000)
    text = error.inner_text()
    assert text.startswith("The query failed:")
    assert "DEADNODE@127.0.0.1" in text and "failed" in text
    screenshot(page, "qr-unreachable")
    job = Job.objects.get(kind="query")
    assert job.state == JobState.FAILURE and job.attempts == 1 and job.params["filters"]["StudyDate"]


def test_query_form_validation_and_no_nodes(client, admin_user):
    client.force_login(admin_user)
    response = client.get("/qr/")
    assert response.status_code == 200 and b'id="qr-no-nodes"' in response.content
    node = node_add("PEER", free_port(), is_query_source=True)
    cases = [
        ({}, "Give at least one search criterion"),
        ({"patient_id": "A\\B"}, "Backslashes and control characters are not allowed."),
        ({"accession": "X" * 17}, "At most 16 characters."),
        ({"date_from": "2024-02-01", "date_to": "2024-01-01"}, "The end date is before the start date."),
        ({"patient_id": "P1", "node": "999"}, "Select a valid choice."),
    ]
    for fields, message in cases:
        response = client.post("/qr/query/", {"node": node.pk, **fields})
        assert response.status_code == 400, fields
        assert message in response.content.decode(), fields
    assert not Job.objects.exists()
    response = client.post("/qr/query/", {"node": node.pk, "patient_name": "DOE", "modality": "MR",
                                          "description": "head", "date_from": "2024-01-01"})
    assert response.status_code == 302
    job = Job.objects.get(kind="query")
    assert job.params["filters"] == {"PatientName": "DOE*", "ModalitiesInStudy": "MR",
                                     "StudyDescription": "*head*", "StudyDate": "20240101-"}
    assert job.params["node"] == "PEER" and job.max_attempts == 1 and job.created_by == admin_user
    assert response["Location"].startswith("/qr/?node=") and f"job={job.pk}" in response["Location"]
    # The page in Simplified Chinese (the dimse app's own catalog).
    page = client.get(response["Location"], HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "获取方式" in page and "正在查询 PEER…" in page and "尚未获取任何内容。" in page


def test_query_jobs_are_private_and_retrieve_needs_their_results(client, admin_user, django_user_model):
    from pacs.services.jobs import job_create

    node = node_add("PEER", free_port(), is_query_source=True)
    client.force_login(admin_user)
    client.post("/qr/query/", {"node": node.pk, "patient_id": "P1"})
    job = Job.objects.get(kind="query")
    data = client.get(f"/qr/query/{job.pk}/").json()
    assert data["state"] == "pending" and not data["finished"] and "html" not in data
    # Another (non-superuser) user sees neither the job nor can use it.
    other = django_user_model.objects.create_user("other", password="x-pass-123")
    from django.contrib.auth.models import Permission

    other.user_permissions.add(Permission.objects.get(codename="add_job", content_type__app_label="pacs"))
    client.force_login(other)  # may queue jobs (pacs.add_job), but not use another user's
    assert client.get(f"/qr/query/{job.pk}/").status_code == 404
    assert client.post("/qr/series/", {"query": job.pk, "uid": "1.2.3"}).status_code == 404
    assert client.post("/qr/retrieve/", {"query": job.pk, "uid": "1.2.3"}).status_code == 404
    mine = job_create(kind="retrieve", params={"node": "PEER"}, user=other, enqueue=False)
    theirs = job_create(kind="retrieve", params={"node": "PEER"}, user=admin_user, enqueue=False)
    ids = [row["id"] for row in client.get(f"/qr/retrievals/?id={mine.pk}&id={theirs.pk}").json()["jobs"]]
    assert ids == [mine.pk]
    # The owner cannot retrieve UIDs the query did not return (nor anything before it succeeded).
    client.force_login(admin_user)
    response = client.post("/qr/retrieve/", {"query": job.pk, "uid": "1.2.3"}, HTTP_ACCEPT="application/json")
    assert response.status_code == 400 and "not in the results" in response.json()["error"]
    response = client.post("/qr/retrieve/", {"query": job.pk, "uid": "1.2/../3"}, HTTP_ACCEPT="application/json")
    assert response.status_code == 400 and "Not a valid UID" in response.json()["error"]
    assert Job.objects.filter(kind="retrieve").count() == 2
    # CSRF is enforced on the page's POSTs.
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(admin_user)
    assert strict.post("/qr/query/", {"node": node.pk, "patient_id": "P1"}).status_code == 403


def test_waiting_state_without_a_worker_and_cancel(logged_in, screenshot):
    """No cluster running: the query stays pending, the page says why, and it can be cancelled."""
    page = logged_in
    node_add("PEER", free_port(), is_query_source=True)
    _search(page, **{"#qr-acc": "ACC9"})
    waiting = page.locator("#qr-waiting")
    assert waiting.locator(".qr-waiting-text").inner_text() == "Querying PEER…"
    assert waiting.locator(".qr-waiting-state").inner_text() == "Pending"
    expect(waiting.locator(".qr-waiting-hint")).to_contain_text("manage.py qcluster", timeout=20_000)
    screenshot(page, "qr-no-worker")
    waiting.locator("button[type=submit]").click()
    expect(page.locator("#qr-cancelled")).to_have_text("The query was cancelled.")
    assert page.locator("#qr-acc").input_value() == "ACC9"
    assert Job.objects.get(kind="query").state == JobState.CANCELLED

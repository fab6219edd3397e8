"""Status, settings, logs, jobs and upload pages in a real browser."""

from __future__ import annotations

import re
import subprocess
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.polling import eventually

pytestmark = pytest.mark.django_db(transaction=True)


def _listener_row(page, service: str):
    return page.locator(f"#listener-table tr[data-service={service}]")


def test_status_page_shows_listeners_and_stops_and_starts_them(logged_in, runscp, archive, screenshot):
    archive(count=2)
    logged_in.goto("/status/")
    storage = _listener_row(logged_in, "storage")
    eventually(lambda: "up" in storage.locator(".listener-state").inner_text(), timeout=15)
    assert logged_in.locator("[data-k='counts.instances']").inner_text() == "2"
    assert logged_in.locator("#ingest-chart rect").count() == 60
    screenshot(logged_in, "status")

    storage.locator("button[value=stop]").click()
    logged_in.wait_for_load_state()
    assert "done" in logged_in.locator(".messages").inner_text()
    eventually(lambda: "down" in _listener_row(logged_in, "storage").locator(".listener-state").inner_text(),
               timeout=15)
    assert "up" in _listener_row(logged_in, "qr").locator(".listener-state").inner_text()

    _listener_row(logged_in, "storage").locator("button[value=start]").click()
    logged_in.wait_for_load_state()
    eventually(lambda: "up" in _listener_row(logged_in, "storage").locator(".listener-state").inner_text(),
               timeout=15)


def test_status_without_runscp_says_so(logged_in):
    logged_in.goto("/status/")
    _listener_row(logged_in, "storage").locator("button[value=restart]").click()
    logged_in.wait_for_load_state()
    assert "runscp" in logged_in.locator(".messages").inner_text()


def test_settings_validates_and_applies(logged_in, runscp, screenshot):
    from dimse.models import Listener
    from pacs.services.config import archive_config_get

    logged_in.goto("/settings/")
    screenshot(logged_in, "settings")
    # Invalid: an AE title with a backslash, two listeners on one port, bad path template.
    logged_in.fill("#id_storage-ae_title", "BAD\\AE")
    logged_in.fill("#id_archive-path_template", "../{PatientID}.dcm")
    logged_in.click("#settings-apply")
    assert logged_in.locator(".errorlist").count() >= 2
    assert "AE title" in logged_in.locator("#listener-settings").inner_text()
    assert Listener.objects.get(service="storage").ae_title != "BAD\\AE"

    logged_in.fill("#id_storage-ae_title", "MYSTORE")
    logged_in.fill("#id_archive-path_template", "{StudyInstanceUID}/{SOPInstanceUID}.dcm")
    logged_in.select_option("#id_archive-duplicate_policy", "reject")
    logged_in.click("#settings-apply")
    logged_in.wait_for_url(re.compile(r"/settings/$"))
    message = logged_in.locator(".messages").inner_text()
    assert "restarted" in message and "MYSTORE" in message  # runscp restarted with the new title
    assert Listener.objects.get(service="storage").ae_title == "MYSTORE"
    assert archive_config_get(fresh=True).duplicate_policy == "reject"
    assert logged_in.input_value("#id_storage-ae_title") == "MYSTORE"


def test_upload_files_and_zip_into_the_archive(logged_in, storage_root, archive_config, tmp_path, screenshot):
    from pacs.models import Instance
    from tests.dicom_factories import study_files

    files = study_files(tmp_path / "a", count=2, patient_name="UPLOAD^ONE")
    zipped = study_files(tmp_path / "b", count=3, patient_name="UPLOAD^ZIP")
    zip_path = tmp_path / "study.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        for path in zipped:
            archive.write(path, f"nested/dir/{path.name}")
        archive.writestr("README.txt", "not dicom")
    junk = tmp_path / "notes.txt"
    junk.write_text("hello")

    logged_in.goto("/send/")
    logged_in.set_input_files("#file-input", [str(p) for p in files] + [str(zip_path), str(junk)])
    summary = logged_in.locator("#upload-summary")
    try:
        eventually(lambda: summary.inner_text().startswith("5 uploaded, 2 rejected / 4"), timeout=20)
    except AssertionError:
        raise AssertionError(summary.inner_text() + " " + logged_in.locator("#upload-list").inner_text()) from None
    assert Instance.objects.count() == 5
    assert "✗" in logged_in.locator("#upload-list").inner_text()
    screenshot(logged_in, "send-upload")



def test_upload_below_the_free_space_floor_is_refused_with_a_message(logged_in, admin_client, storage_root,
                                                                     archive_config, tmp_path):
    from pacs.models import Instance
    from tests.dicom_factories import study_files

    files = study_files(tmp_path / "a", count=1)
    archive_config(min_free_mb=10**9)  # more than any disk: the volume is "full"
    logged_in.goto("/send/")
    logged_in.set_input_files("#file-input", [str(p) for p in files])
    eventually(lambda: logged_in.locator("#upload-summary").inner_text().startswith("0 uploaded, 1 rejected / 1"),
               timeout=20)
    assert "Archive storage is full" in logged_in.locator("#upload-list").inner_text()
    # Refused as a whole before the body is read (not instance by instance after receiving it).
    response = admin_client.post("/send/upload/", {"file": files[0].open("rb")})
    assert response.status_code == 507 and "Archive storage is full" in response.json()["error"]
    assert Instance.objects.count() == 0

@pytest.fixture
def tiny_volume(tmp_path):
    """A 64 KiB tmpfs: writing more than that fails with ENOSPC, as on a full disk (needs root to mount)."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs needs root and mount (util-linux): {mounted.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", "--lazy", str(mount_point)], check=True)


def test_upload_whose_temp_file_fills_the_disk_is_507_and_leaves_nothing(admin_client, storage_root,
                                                                         archive_config, settings, tiny_volume):
    from pacs.models import Instance
    from tests import dicom_factories as f

    # Django writes an upload above FILE_UPLOAD_MAX_MEMORY_SIZE to a temp file first: that file fills the volume.
    settings.FILE_UPLOAD_TEMP_DIR = str(tiny_volume)
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1024
    data = f.encode(f.ct_dataset(size=256))  # 128 KiB of pixels: twice the volume
    response = admin_client.post("/send/upload/", {"file": SimpleUploadedFile("ct.dcm", data)})
    assert response.status_code == 507
    assert "Cannot receive the upload" in response.json()["error"]
    assert Instance.objects.count() == 0 and not list(tiny_volume.iterdir())
    settings.FILE_UPLOAD_TEMP_DIR = None  # the next upload, with room, is stored
    response = admin_client.post("/send/upload/", {"file": SimpleUploadedFile("ct.dcm", data)})
    assert response.status_code == 200 and response.json()["stored"] == 1


def test_logs_page_filters_searches_and_tails(logged_in, settings, tmp_path, screenshot):
    settings.PACS_LOG_DIR = tmp_path
    log = tmp_path / "storage.log"
    log.write_text(
        "2026-01-01 10:00:00 level=INFO logger=pacs c-store stored calling_aet=CT1\n"
        "2026-01-01 10:00:01 level=WARNING logger=pacs disk low free_mb=10\n"
        "2026-01-01 10:00:02 level=ERROR logger=pacs <script>alert(1)</script> failed\n"
    )
    (tmp_path / "storage.log.1").write_text("old\n")
    logged_in.goto("/logs/?service=storage")
    view = logged_in.locator("#logview")
    assert view.locator("div").count() == 3
    logged_in.select_option("#id_level", "WARNING")
    logged_in.click("#log-filters button[type=submit]")
    assert view.locator("div").count() == 2
    assert "<script>alert(1)</script>" in view.inner_text()  # text, not markup
    logged_in.fill("#l-q", "disk")
    logged_in.click("#log-filters button[type=submit]")
    assert view.locator("div").count() == 1
    logged_in.fill("#l-q", "")
    logged_in.click("#log-filters button[type=submit]")
    with log.open("a") as fh:
        fh.write("2026-01-01 10:00:03 level=ERROR logger=pacs appended later\n")
    view.locator("text=appended later").wait_for(timeout=10_000)  # live tail
    screenshot(logged_in, "logs")
    with logged_in.expect_download() as download:
        logged_in.click("text=Download")
    assert download.value.suggested_filename == "storage.log"
    logged_in.on("dialog", lambda d: d.accept())
    logged_in.fill("#days", "0")
    logged_in.click("text=Delete old files")
    logged_in.wait_for_load_state()
    assert not (tmp_path / "storage.log.1").exists() and log.exists()


def test_jobs_page_shows_progress_errors_and_retries(logged_in, admin_user, screenshot):
    from pacs.choices import JobState
    from pacs.models import Job
    from pacs.services.jobs import JobFailed, job_create, job_execute, job_kind_register

    job_kind_register("web-test", "tests.web.test_operations.failing_runner")
    job = job_create(kind="web-test", params={}, description="a job that fails", max_attempts=1, enqueue=False)
    job_execute(job_id=job.pk)
    logged_in.goto("/jobs/")
    row = logged_in.locator(f"tr[data-job-id='{job.pk}']")
    assert "Failure" in row.inner_text() and "remote node refused" in row.inner_text()
    assert "3/10" in row.inner_text()
    screenshot(logged_in, "jobs")
    row.locator("text=Retry").click()
    logged_in.wait_for_load_state()
    assert "queued again" in logged_in.locator(".messages").inner_text()
    assert Job.objects.get(pk=job.pk).state == JobState.PENDING
    assert JobFailed


def failing_runner(job, progress):
    from pacs.services.jobs import JobFailed

    progress.update(done=3, total=10, force=True)
    raise JobFailed("remote node refused the association", retry=False)

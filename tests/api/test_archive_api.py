"""Archive REST API: lists with DICOM matching, edits written into files, deletes, downloads, admin APIs."""

from __future__ import annotations

import io
import zipfile

import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid

from dimse.models import AssociationLog, RemoteNode
from pacs import storage
from pacs.models import Instance, Job, Patient, Series, Study
from pacs.services.ingest import IngestOrigin, instance_ingest
from pacs.services.jobs import job_execute, job_kind_register
from tests import dicom_factories as f

pytestmark = pytest.mark.django_db(transaction=True)


def _store(**kwargs):
    ds = f.ct_dataset(**kwargs)
    instance_ingest(source=f.encode(ds), origin=IngestOrigin(source="import"))
    return ds


@pytest.fixture
def archive(archive_config):
    """Two patients: P1 with a two-series study (3 instances), P2 with one MR study."""
    study_uid = generate_uid()
    series_a, series_b = generate_uid(), generate_uid()
    first = [_store(patient_id="P1", patient_name="WANG^XIAOMING", study_uid=study_uid, series_uid=series_a,
                    instance_number=i + 1, AccessionNumber="A1", StudyDate="20240105") for i in range(2)]
    second = _store(patient_id="P1", patient_name="WANG^XIAOMING", study_uid=study_uid, series_uid=series_b,
                    modality="SR", AccessionNumber="A1", StudyDate="20240105")
    other = _store(patient_id="P2", patient_name="LI^NA", modality="MR", AccessionNumber="B2", StudyDate="20230301")
    return {"study": study_uid, "series_a": series_a, "series_b": series_b, "first": first, "second": second,
            "other": other}


def test_study_list_filters_paging_ordering(api, archive):
    url = api.url("/api/studies/")
    by_name = api.get(url, params={"PatientName": "WANG*"}).json()
    assert by_name["count"] == 1 and by_name["results"][0]["study_instance_uid"] == archive["study"]
    assert by_name["results"][0]["patient"]["patient_id"] == "P1"
    assert api.get(url, params={"StudyDate": "-20231231"}).json()["results"][0]["accession_number"] == "B2"
    assert api.get(url, params={"ModalitiesInStudy": "SR"}).json()["count"] == 1
    page = api.get(url, params={"limit": 1, "offset": 1, "ordering": "study_date"}).json()
    assert page["count"] == 2 and page["results"][0]["study_instance_uid"] == archive["study"]
    assert api.get(url, params={"ordering": "file_path"}).status_code == 400
    assert api.get(url, params={"StudyDate": "2024-99"}).status_code == 400
    bad = api.get(url, params={"Nonsense": "1"})
    assert bad.status_code == 400 and "Nonsense" in bad.json()
    series = api.get(api.url("/api/series/"), params={"StudyInstanceUID": archive["study"]}).json()
    assert series["count"] == 2
    instances = api.get(api.url("/api/instances/"), params={"SeriesInstanceUID": archive["series_a"]}).json()
    assert instances["count"] == 2
    patients = api.get(api.url("/api/patients/"), params={"PatientID": "P1"}).json()
    assert patients["results"][0]["number_of_patient_related_instances"] == 3


def test_lists_have_no_n_plus_one(client, admin_user, archive, django_assert_max_num_queries):
    client.force_login(admin_user)
    for index in range(5):
        _store(patient_id=f"X{index}")
    for path in ("/api/studies/", "/api/series/", "/api/instances/", "/api/patients/"):
        with django_assert_max_num_queries(4):
            response = client.get(path)
        assert response.status_code == 200 and response.json()["count"] >= 5


def test_study_edit_is_written_into_the_files(api, archive):
    study = Study.objects.get(study_instance_uid=archive["study"])
    response = api.patch(api.url(f"/api/studies/{study.pk}/"),
                         json={"PatientName": "WANG^DAMING=王^大明", "AccessionNumber": "A9"})
    assert response.status_code == 200, response.text
    assert response.json()["accession_number"] == "A9"
    patient = Patient.objects.get(patient_id="P1")
    assert patient.patient_name_ideographic == "王^大明"
    for instance in Instance.objects.filter(series__study=study):
        ds = dcmread(storage.absolute_path(instance.file_path))
        assert str(ds.PatientName) == "WANG^DAMING=王^大明" and ds.AccessionNumber == "A9"
        assert instance.file_size == storage.absolute_path(instance.file_path).stat().st_size
    assert api.patch(api.url(f"/api/studies/{study.pk}/"), json={"SOPInstanceUID": "1.2"}).status_code == 400
    assert api.patch(api.url(f"/api/studies/{study.pk}/"), json={"PatientBirthDate": "1980-01-01"}).status_code == 400


def test_patient_id_change_moves_the_study_and_keeps_counts(api, archive):
    study = Study.objects.get(study_instance_uid=archive["study"])
    response = api.patch(api.url(f"/api/studies/{study.pk}/"), json={"PatientID": "P2"})
    assert response.status_code == 200
    assert not Patient.objects.filter(patient_id="P1").exists()
    p2 = Patient.objects.get(patient_id="P2")
    assert (p2.number_of_patient_related_studies, p2.number_of_patient_related_instances) == (2, 4)


def test_delete_series_then_study_keeps_counts_and_removes_files(api, archive):
    series_b = Series.objects.get(series_instance_uid=archive["series_b"])
    path = storage.absolute_path(Instance.objects.get(series=series_b).file_path)
    result = api.delete(api.url(f"/api/series/{series_b.pk}/")).json()
    assert result == {"instances": 1, "series": 1, "studies": 0, "patients": 0, "files": 1}
    assert not path.exists()
    study = Study.objects.get(study_instance_uid=archive["study"])
    assert (study.number_of_study_related_series, study.number_of_study_related_instances) == (1, 2)
    assert study.modalities_in_study == "CT"
    assert Patient.objects.get(patient_id="P1").number_of_patient_related_instances == 2
    result = api.delete(api.url(f"/api/studies/{study.pk}/")).json()
    assert result == {"instances": 2, "series": 1, "studies": 1, "patients": 1, "files": 2}
    assert not Patient.objects.filter(patient_id="P1").exists()
    assert Instance.objects.count() == 1


def test_download_zip_and_dicomdir(api, archive):
    study = Study.objects.get(study_instance_uid=archive["study"])
    response = api.get(api.url(f"/api/studies/{study.pk}/download/"))
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive_zip:
        names = archive_zip.namelist()
        assert len(names) == 3
        uids = {dcmread(io.BytesIO(archive_zip.read(n))).SOPInstanceUID for n in names}
    assert uids == set(Instance.objects.filter(series__study=study).values_list("sop_instance_uid", flat=True))
    with_dicomdir = api.get(api.url(f"/api/studies/{study.pk}/download/"), params={"dicomdir": "true"})
    with zipfile.ZipFile(io.BytesIO(with_dicomdir.content)) as archive_zip:
        names = archive_zip.namelist()
        assert "DICOMDIR" in names and len(names) == 4
        dicomdir = dcmread(io.BytesIO(archive_zip.read("DICOMDIR")))
        assert len(dicomdir.DirectoryRecordSequence) >= 4  # patient, study, series..., images
    series = Series.objects.get(series_instance_uid=archive["series_a"])
    one = api.get(api.url(f"/api/series/{series.pk}/download/"))
    assert len(zipfile.ZipFile(io.BytesIO(one.content)).namelist()) == 2


def test_permissions_from_groups(viewer, live_server, archive):
    import requests
    from django.contrib.auth.models import Group, Permission

    study = Study.objects.get(study_instance_uid=archive["study"])
    assert requests.get(live_server.url + "/api/studies/").status_code in (401, 403)
    assert viewer.get(viewer.url("/api/studies/")).status_code == 200
    assert viewer.delete(viewer.url(f"/api/studies/{study.pk}/")).status_code == 403
    assert viewer.get(viewer.url("/api/users/")).status_code == 403
    group = Group.objects.create(name="archivists")
    group.permissions.add(Permission.objects.get(codename="delete_study"))
    from django.contrib.auth import get_user_model

    get_user_model().objects.get(username="viewer").groups.add(group)
    assert viewer.delete(viewer.url(f"/api/studies/{study.pk}/")).status_code == 200


def test_archive_settings_and_users(api):
    assert api.get(api.url("/api/settings/")).json()["duplicate_policy"] == "keep-first"
    changed = api.put(api.url("/api/settings/"), json={"duplicate_policy": "replace", "min_free_mb": 5})
    assert changed.status_code == 200 and changed.json()["duplicate_policy"] == "replace"
    assert api.put(api.url("/api/settings/"), json={"path_template": "../{SOPInstanceUID}"}).status_code == 400
    assert api.put(api.url("/api/settings/"), json={"duplicate_policy": "x"}).status_code == 400
    created = api.post(api.url("/api/users/"), json={"username": "tech", "password": "long-enough-1"})
    assert created.status_code == 201 and "password" not in created.json()
    from django.contrib.auth import get_user_model

    assert get_user_model().objects.get(username="tech").check_password("long-enough-1")


def test_web_settings_through_the_api_apply_to_the_next_request(api):
    import requests

    def preflight(origin: str):
        return requests.options(api.url("/dicomweb/studies"), timeout=10, headers={
            "Origin": origin, "Access-Control-Request-Method": "GET"})

    assert "Access-Control-Allow-Origin" not in preflight("http://viewer.example:3000").headers
    changed = api.put(api.url("/api/settings/"), json={
        "cors_allowed_origins": ["HTTP://Viewer.example:3000"],
        "external_viewer_url": "radiant://?n=pstv&v=0020000D&v={StudyInstanceUID}",
        "public_url": "https://pacs.example/",
    })
    assert changed.status_code == 200, changed.text
    body = api.get(api.url("/api/settings/")).json()
    # Stored as the Settings page stores them: origins as browsers send them, no trailing slash.
    assert body["cors_allowed_origins"] == ["http://viewer.example:3000"]
    assert body["external_viewer_url"].endswith("{StudyInstanceUID}") and body["public_url"] == "https://pacs.example"
    assert preflight("http://viewer.example:3000").headers["Access-Control-Allow-Origin"] == "http://viewer.example:3000"
    bad = api.put(api.url("/api/settings/"), json={"cors_allowed_origins": ["not an origin"]})
    assert bad.status_code == 400 and "cors_allowed_origins" in bad.json()
    assert api.get(api.url("/api/settings/")).json()["cors_allowed_origins"] == ["http://viewer.example:3000"]


def test_logs_list_tail_download_delete(api, settings, tmp_path):
    settings.PACS_LOG_DIR = tmp_path
    (tmp_path / "storage.log").write_text(
        "t level=INFO logger=pacs a=1 first\n"
        "t level=ERROR logger=pacs a=2 broken thing\n"
        "t level=INFO logger=pacs a=3 third\n"
    )
    (tmp_path / "storage.log.1").write_text("t level=INFO old\n")
    files = api.get(api.url("/api/logs/")).json()
    assert {item["name"] for item in files} == {"storage.log", "storage.log.1"}
    tail = api.get(api.url("/api/logs/storage/"), params={"lines": 2}).json()
    assert [line.split()[-1] for line in tail["lines"]] == ["thing", "third"]
    errors = api.get(api.url("/api/logs/storage/"), params={"level": "ERROR"}).json()["lines"]
    assert len(errors) == 1 and "broken" in errors[0]
    assert api.get(api.url("/api/logs/storage/"), params={"q": "THIRD"}).json()["lines"][0].endswith("third")
    assert api.get(api.url("/api/logs/storage/"), params={"level": "LOUD"}).status_code == 400
    assert api.get(api.url("/api/logs/nope/")).status_code == 404
    download = api.get(api.url("/api/logs/storage/download/"), params={"file": "storage.log.1"})
    assert download.content == b"t level=INFO old\n"
    assert api.get(api.url("/api/logs/storage/download/"), params={"file": "../secret"}).status_code == 400
    assert api.delete(api.url("/api/logs/storage/files/"), params={"file": "storage.log"}).status_code == 400
    assert api.delete(api.url("/api/logs/storage/files/"), params={"file": "storage.log.1"}).status_code == 204
    assert not (tmp_path / "storage.log.1").exists() and (tmp_path / "storage.log").exists()


def _count_runner(job, progress):
    """A real runner: counts the archived instances of the study named in params."""
    total = Instance.objects.filter(series__study__study_instance_uid=job.params["study_instance_uid"]).count()
    progress.update(done=total, total=total, force=True)
    return {"instances": total}


def test_jobs_create_watch_retry_cancel(api, archive):
    job_kind_register("api-test-count", "tests.api.test_archive_api._count_runner")
    assert api.post(api.url("/api/jobs/"), json={"kind": "no-such-kind"}).status_code == 400
    created = api.post(api.url("/api/jobs/"), json={"kind": "api-test-count",
                                                    "params": {"study_instance_uid": archive["study"]}})
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    job_execute(job_id=job_id)
    done = api.get(api.url(f"/api/jobs/{job_id}/")).json()
    assert done["state"] == "success" and done["result"] == {"instances": 3} and done["progress_done"] == 3
    assert api.post(api.url(f"/api/jobs/{job_id}/cancel/")).status_code == 409
    retried = api.post(api.url(f"/api/jobs/{job_id}/retry/")).json()
    assert retried["state"] == "pending" and retried["progress_done"] == 0
    cancelled = api.post(api.url(f"/api/jobs/{job_id}/cancel/")).json()
    assert cancelled["state"] == "cancelled"
    assert api.get(api.url("/api/jobs/"), params={"state": "cancelled"}).json()["count"] == 1
    assert Job.objects.get(pk=job_id).state == "cancelled"


def test_nodes_crud_and_associations(api):
    created = api.post(api.url("/api/nodes/"), json={"ae_title": "CT1", "host": "10.0.0.5", "port": 104})
    assert created.status_code == 201
    assert api.post(api.url("/api/nodes/"), json={"ae_title": "BAD\\AE", "host": "h", "port": 104}).status_code == 400
    assert api.post(api.url("/api/nodes/"), json={"ae_title": "X", "host": "h", "port": 70000}).status_code == 400
    node_id = created.json()["id"]
    assert api.patch(api.url(f"/api/nodes/{node_id}/"), json={"port": 11112}).json()["port"] == 11112
    from django.utils import timezone

    AssociationLog.objects.create(service="storage", calling_aet="CT1", called_aet="STORESCP", peer_address="1.2.3.4",
                                  status="released", started_at=timezone.now(), instances_received=5)
    listed = api.get(api.url("/api/associations/"), params={"calling_aet": "CT1"}).json()
    assert listed["count"] == 1 and listed["results"][0]["instances_received"] == 5
    assert api.delete(api.url(f"/api/nodes/{node_id}/")).status_code == 204
    assert not RemoteNode.objects.exists()


def test_node_verify_and_send_jobs_against_a_live_listener(api, archive, dimse_listener):
    manager = dimse_listener("storage")
    node = api.post(api.url("/api/nodes/"), json={"ae_title": "STORESCP", "host": "127.0.0.1",
                                                   "port": manager.port("storage")}).json()
    verify = api.post(api.url(f"/api/nodes/{node['id']}/verify/"))
    assert verify.status_code == 202 and verify.json()["kind"] == "verify"
    assert job_execute(job_id=verify.json()["id"]).state == "success"

    send = api.post(api.url("/api/jobs/"), json={"kind": "send", "params": {
        "node": "STORESCP", "study_instance_uids": [archive["study"]]}})
    assert send.status_code == 201, send.text
    job = job_execute(job_id=send.json()["id"])
    assert job.state == "success", job.errors
    watched = api.get(api.url(f"/api/jobs/{job.pk}/")).json()
    assert watched["progress_done"] == 3 and watched["progress_total"] == 3
    assert AssociationLog.objects.filter(service="storage", instances_received=3).exists()

"""REST API /api/worklist/ with requests against live_server: both JSON forms, validation, filters."""

from __future__ import annotations

import datetime
import json

import pytest
import requests
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import ModalityPerformedProcedureStep

from worklist.models import ScheduledProcedureStep, WorklistItem

TODAY = datetime.date.today().strftime("%Y%m%d")
ORDER = {
    "PatientName": "WANG^XIAOMING=王^小明",
    "PatientID": "P001",
    "PatientBirthDate": "19800102",
    "PatientSex": "M",
    "AccessionNumber": "A1",
    "RequestedProcedureID": "RP1",
    "RequestedProcedureDescription": "CT chest",
    "ScheduledProcedureStepSequence": [
        {
            "ScheduledProcedureStepID": "SPS1",
            "Modality": "CT",
            "ScheduledStationAETitle": "CT01",
            "ScheduledProcedureStepStartDate": TODAY,
            "ScheduledProcedureStepStartTime": "090000",
        }
    ],
}


@pytest.fixture
def api(live_server, django_user_model):
    django_user_model.objects.create_user(username="ris", password="secret-ris")
    session = requests.Session()
    session.auth = ("ris", "secret-ris")
    base = live_server.url + "/api/worklist/"
    return session, base


def order(**overrides) -> dict:
    data = {**ORDER, "ScheduledProcedureStepSequence": [dict(s) for s in ORDER["ScheduledProcedureStepSequence"]]}
    data.update(overrides)
    return data


def test_create_with_keyword_json_and_read_back(api):
    session, base = api
    response = session.post(base, json=order(), timeout=10)

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["PatientName"] == "WANG^XIAOMING=王^小明"
    assert body["StudyInstanceUID"].startswith("1.2.826.0.1.3680043.8.498.")
    assert body["ScheduledProcedureStepSequence"][0]["ScheduledProcedureStepStatus"] == "SCHEDULED"
    assert body["ScheduledProcedureStepSequence"][0]["ScheduledProcedureStepStartTime"] == "090000"
    item = WorklistItem.objects.get(pk=body["id"])
    assert (item.patient_name_alphabetic, item.patient_name_ideographic) == ("WANG^XIAOMING", "王^小明")
    assert item.patient_birth_date == datetime.date(1980, 1, 2)

    again = session.get(f"{base}{body['id']}/", timeout=10).json()
    assert again == body


def test_create_with_dicom_json_and_read_as_dicom_json(api):
    session, base = api
    ds = Dataset()
    ds.PatientName = "ZHANG^SAN=张^三"
    ds.PatientID = "P002"
    ds.PatientSex = "F"
    ds.AccessionNumber = "A2"
    study_uid = generate_uid()
    ds.StudyInstanceUID = study_uid
    step = Dataset()
    step.Modality = "MR"
    step.ScheduledStationAETitle = "MR01"
    step.ScheduledProcedureStepStartDate = TODAY
    step.ScheduledProcedureStepStartTime = "1430"
    ds.ScheduledProcedureStepSequence = [step]

    response = session.post(base, data=json.dumps(ds.to_json_dict()),
                            headers={"Content-Type": "application/dicom+json"}, timeout=10)
    assert response.status_code == 201, response.text
    item = WorklistItem.objects.get(study_instance_uid=study_uid)
    assert item.patient_name_ideographic == "张^三"
    assert item.steps.get().scheduled_procedure_step_start_time == datetime.time(14, 30)

    read = session.get(f"{base}{item.pk}/", headers={"Accept": "application/dicom+json"}, timeout=10)
    assert read.headers["Content-Type"].startswith("application/dicom+json")
    back = Dataset.from_json(read.json())
    assert str(back.PatientName) == "ZHANG^SAN=张^三"
    assert back.StudyInstanceUID == study_uid
    assert back.ScheduledProcedureStepSequence[0].Modality == "MR"
    assert back.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime == "143000"

    listing = session.get(base, headers={"Accept": "application/dicom+json"}, timeout=10).json()
    assert isinstance(listing, list) and listing[0]["00100020"]["Value"] == ["P002"]


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"PatientBirthDate": "19801345"}, "PatientBirthDate"),
        ({"PatientBirthDate": "yesterday"}, "PatientBirthDate"),
        ({"PatientSex": "X"}, "PatientSex"),
        ({"AccessionNumber": "A" * 17}, "AccessionNumber"),
        ({"PatientID": ""}, "PatientID"),
        ({"PatientWeight": "70"}, "PatientWeight"),
        ({"StudyInstanceUID": "1.2.abc"}, "StudyInstanceUID"),
        ({"PatientName": "A" * 65 + "^B"}, "PatientName"),
        ({"ScheduledProcedureStepSequence": []}, "ScheduledProcedureStepSequence"),
    ],
)
def test_bad_items_get_400_with_the_keyword_and_nothing_saved(api, change, key):
    session, base = api
    response = session.post(base, json=order(**change), timeout=10)

    assert response.status_code == 400, response.text
    assert key in response.json()
    assert WorklistItem.objects.count() == 0
    assert ScheduledProcedureStep.objects.count() == 0


@pytest.mark.parametrize(
    ("step_change", "key"),
    [
        ({"ScheduledProcedureStepStartDate": "2026-02-30"}, "ScheduledProcedureStepStartDate"),
        ({"ScheduledProcedureStepStartTime": "2561"}, "ScheduledProcedureStepStartTime"),
        ({"ScheduledStationAETitle": "X" * 17}, "ScheduledStationAETitle"),
        ({"Modalty": "CT"}, "Modalty"),
        ({"ScheduledProcedureStepStatus": "DONE"}, "ScheduledProcedureStepStatus"),
    ],
)
def test_a_bad_second_step_rejects_the_whole_item(api, step_change, key):
    session, base = api
    data = order()
    data["ScheduledProcedureStepSequence"].append({"Modality": "CT", **step_change})

    response = session.post(base, json=data, timeout=10)

    assert response.status_code == 400, response.text
    errors = response.json()["ScheduledProcedureStepSequence"]
    assert key in errors[1]
    assert WorklistItem.objects.count() == 0


def test_bad_dicom_json_is_400(api):
    session, base = api
    response = session.post(base, data='{"00100010": {"vr": "PN", "Value": 5}}',
                            headers={"Content-Type": "application/dicom+json"}, timeout=10)
    assert response.status_code == 400
    assert WorklistItem.objects.count() == 0


def test_duplicate_study_uid_is_400(api):
    session, base = api
    uid = generate_uid()
    assert session.post(base, json=order(StudyInstanceUID=uid), timeout=10).status_code == 201
    response = session.post(base, json=order(StudyInstanceUID=uid, AccessionNumber="A2"), timeout=10)
    assert response.status_code == 400
    assert "StudyInstanceUID" in response.json()
    assert WorklistItem.objects.count() == 1


def test_update_patch_and_delete(api):
    session, base = api
    created = session.post(base, json=order(), timeout=10).json()
    url = f"{base}{created['id']}/"

    patched = session.patch(url, json={"PatientName": "WANG^XM=王^小明", "PatientSex": "O"}, timeout=10)
    assert patched.status_code == 200, patched.text
    assert patched.json()["PatientSex"] == "O"
    assert WorklistItem.objects.get().patient_name_alphabetic == "WANG^XM"
    step_pk = ScheduledProcedureStep.objects.get().pk

    steps = [
        {"ScheduledProcedureStepID": "SPS1", "Modality": "CT", "ScheduledStationAETitle": "CT02"},
        {"ScheduledProcedureStepID": "SPS2", "Modality": "CT", "ScheduledStationAETitle": "CT01"},
    ]
    replaced = session.put(url, json=order(ScheduledProcedureStepSequence=steps), timeout=10)
    assert replaced.status_code == 200, replaced.text
    assert [s["ScheduledStationAETitle"] for s in replaced.json()["ScheduledProcedureStepSequence"]] == ["CT02", "CT01"]
    # SPS1 kept its row (MPPS links survive an edit).
    assert ScheduledProcedureStep.objects.get(scheduled_procedure_step_id="SPS1").pk == step_pk

    bad = session.patch(url, json={"PatientSex": "Q"}, timeout=10)
    assert bad.status_code == 400
    assert WorklistItem.objects.get().patient_sex == "M"  # as the PUT set it

    assert session.delete(url, timeout=10).status_code == 204
    assert session.get(url, timeout=10).status_code == 404
    assert ScheduledProcedureStep.objects.count() == 0


def test_list_filters_use_dicom_matching(api):
    session, base = api
    session.post(base, json=order(), timeout=10)
    mr = order(PatientName="LI^NA", PatientID="P9", AccessionNumber="A9")
    mr["ScheduledProcedureStepSequence"][0].update(Modality="MR", ScheduledProcedureStepStartDate="20200101")
    session.post(base, json=mr, timeout=10)

    def ids(**params):
        response = session.get(base, params=params, timeout=10)
        assert response.status_code == 200, response.text
        return [item["PatientID"] for item in response.json()["results"]]

    assert sorted(ids()) == ["P001", "P9"]
    assert ids(Modality="CT") == ["P001"]
    assert ids(PatientName="li*") == ["P9"]
    assert ids(ScheduledProcedureStepStartDate="-20201231") == ["P9"]
    assert ids(ScheduledProcedureStepStartDate=f"{TODAY}-", ScheduledStationAETitle="CT01") == ["P001"]
    bad = session.get(base, params={"ScheduledProcedureStepStartDate": "soon"}, timeout=10)
    assert bad.status_code == 400
    assert "ScheduledProcedureStepStartDate" in bad.text


def test_login_required(live_server):
    response = requests.get(live_server.url + "/api/worklist/", timeout=10)
    assert response.status_code in (401, 403)
    response = requests.post(live_server.url + "/api/worklist/", json=ORDER, timeout=10)
    assert response.status_code in (401, 403)
    assert WorklistItem.objects.count() == 0


def test_newcomer_flow_order_modality_sees_it_mpps_completes_it(api, dimse_listener, findscu, mwl_port):
    """Done-when of issue 5: API orders, findscu -W sees today's CT for CT01, MPPS completes it."""
    session, base = api
    created = session.post(base, json=order(), timeout=10).json()
    other = order(PatientID="P2", AccessionNumber="A2")
    other["ScheduledProcedureStepSequence"][0]["ScheduledStationAETitle"] = "CT09"
    session.post(base, json=other, timeout=10)

    _, responses = findscu("SpecificCharacterSet=ISO_IR 192", "PatientName", "PatientID", "StudyInstanceUID",
                           "ScheduledProcedureStepSequence[0].Modality=CT",
                           "ScheduledProcedureStepSequence[0].ScheduledStationAETitle=CT01",
                           f"ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate={TODAY}",
                           "ScheduledProcedureStepSequence[0].ScheduledProcedureStepID")
    assert [(ds.PatientID, str(ds.PatientName)) for ds, _ in responses] == [("P001", "WANG^XIAOMING=王^小明")]
    found = responses[0][0]

    ae = AE(ae_title="CT01")
    ae.add_requested_context(ModalityPerformedProcedureStep)
    assoc = ae.associate("127.0.0.1", mwl_port, ae_title="WORKLISTSCP")
    ds = Dataset()
    step = Dataset()
    step.StudyInstanceUID = found.StudyInstanceUID
    step.ScheduledProcedureStepID = found.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID
    ds.ScheduledStepAttributesSequence = [step]
    ds.PatientID = found.PatientID
    ds.PerformedProcedureStepStatus = "IN PROGRESS"
    uid = generate_uid()
    assert assoc.send_n_create(ds, ModalityPerformedProcedureStep, uid)[0].Status == 0
    done = Dataset()
    done.PerformedProcedureStepStatus = "COMPLETED"
    assert assoc.send_n_set(done, ModalityPerformedProcedureStep, uid)[0].Status == 0
    assoc.release()

    body = session.get(f"{base}{created['id']}/", timeout=10).json()
    assert body["ScheduledProcedureStepSequence"][0]["ScheduledProcedureStepStatus"] == "COMPLETED"
    mpps = session.get(f"{base}mpps/{uid}/", timeout=10).json()
    assert mpps["PerformedProcedureStepStatus"] == "COMPLETED"
    assert mpps["StudyInstanceUID"] == created["StudyInstanceUID"]


def test_openapi_schema_documents_both_media_types():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    post = schema["paths"]["/api/worklist/"]["post"]
    assert set(post["requestBody"]["content"]) >= {"application/json", "application/dicom+json"}
    assert "400" in post["responses"]
    params = {p["name"] for p in schema["paths"]["/api/worklist/"]["get"]["parameters"]}
    assert {"PatientID", "Modality", "ScheduledProcedureStepStartDate"} <= params
    assert "/api/worklist/mpps/{sop_instance_uid}/" in schema["paths"]


@pytest.mark.django_db
def test_list_query_count_does_not_grow_with_items(client, django_user_model, django_assert_max_num_queries, make_item):
    from tests.worklist.conftest import step_fields

    user = django_user_model.objects.create_user(username="u", password="p")
    client.force_login(user)
    for n in range(15):
        make_item(patient_id=f"P{n}", steps=[step_fields(), step_fields(scheduled_procedure_step_id="B")])
    # session + user + count + page + prefetch of steps
    with django_assert_max_num_queries(5):
        response = client.get("/api/worklist/", {"Modality": "CT"})
    assert response.status_code == 200
    assert response.json()["count"] == 15

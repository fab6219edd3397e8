"""QIDO-RS and sequence attributes: returned from the stored header, item matching ignored with a warning."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from tests import dicom_factories as f
from tests.dicomweb.conftest import ingest

pytestmark = pytest.mark.django_db(transaction=True)


def _code(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "LOCAL", meaning
    return item


@pytest.fixture
def coded(archive_config):
    """Two studies with a ProcedureCodeSequence of two items, one without any (series of 2 instances each)."""
    out = []
    for index, codes in enumerate([[("CTHEAD", "CT head"), ("CTNECK", "CT neck")], [("CTCHEST", "CT chest")], []]):
        study, series = generate_uid(), generate_uid()
        for number in (1, 2):
            ds = f.ct_dataset(patient_id=f"S{index}", study_uid=study, series_uid=series, instance_number=number)
            if codes:
                ds.ProcedureCodeSequence = Sequence([_code(*code) for code in codes])
            request = Dataset()
            request.RequestedProcedureID = f"RP{index}"
            request.ScheduledProcedureStepID = f"SPS{index}"
            ds.RequestAttributesSequence = Sequence([request])
            ds.ImagePositionPatient = [0, 0, number * 5]
            ingest(ds)
        out.append(ds)
    return out


def _by_patient(answer: list[dict]) -> dict[str, dict]:
    return {item["00100020"]["Value"][0]: item for item in answer}


def test_includefield_sequence_returns_its_items(dw_client, coded):
    answer = _by_patient(dw_client.search_for_studies(fields=["ProcedureCodeSequence"]))
    items = answer["S0"]["00081032"]["Value"]
    assert answer["S0"]["00081032"]["vr"] == "SQ"
    assert [(i["00080100"]["Value"][0], i["00080104"]["Value"][0]) for i in items] == [
        ("CTHEAD", "CT head"), ("CTNECK", "CT neck")]
    assert answer["S1"]["00081032"]["Value"][0]["00080100"]["Value"] == ["CTCHEST"]
    assert answer["S2"]["00081032"] == {"vr": "SQ"}  # absent in the study: present and empty


@pytest.mark.parametrize(
    "params",
    [
        {"includefield": "00081032"},
        {"includefield": "00081032.00080100"},  # a path inside the sequence: the whole sequence
        {"ProcedureCodeSequence": ""},  # an empty key is a return key (PS3.18 8.3.4.3)
    ],
)
def test_sequence_return_key_forms(http, coded, params):
    response = http.get(http.url("/dicomweb/studies"), params={"PatientID": "S1", **params})
    assert response.status_code == 200, response.text
    (study,) = response.json()
    assert study["00081032"]["Value"][0]["00080100"]["Value"] == ["CTCHEST"]


def test_sequences_and_unindexed_attributes_at_series_and_instance_level(http, coded):
    study = coded[0]
    series = http.get(http.url(f"/dicomweb/studies/{study.StudyInstanceUID}/series"),
                      params={"includefield": "RequestAttributesSequence"}).json()
    assert series[0]["00400275"]["Value"][0]["00401001"]["Value"] == ["RP0"]
    instances = http.get(http.url(f"/dicomweb/studies/{study.StudyInstanceUID}/instances"),
                         params={"includefield": "ImagePositionPatient,RequestAttributesSequence"}).json()
    positions = sorted(item["00200032"]["Value"][2] for item in instances)
    assert positions == [5, 10]  # each instance's own header
    assert all(item["00400275"]["Value"][0]["00400009"]["Value"] == ["SPS0"] for item in instances)


def test_sequence_includefield_query_count_does_not_grow(client, django_user_model, coded,
                                                         django_assert_max_num_queries):
    client.force_login(django_user_model.objects.create_superuser("seq", "", "pw-pw-pw-1"))
    for index in range(6):
        ingest(f.ct_dataset(patient_id=f"MORE{index}"))
    with django_assert_max_num_queries(6):
        response = client.get("/dicomweb/studies", {"includefield": "ProcedureCodeSequence"})
    assert len(response.json()) == 9
    with django_assert_max_num_queries(6):
        response = client.get("/dicomweb/series", {"includefield": "RequestAttributesSequence"})
    assert len(response.json()) == 9


def test_matching_on_sequence_items_is_ignored_with_a_warning(http, coded):
    for key in ("ProcedureCodeSequence.CodeValue", "00081032.00080100"):
        response = http.get(http.url("/dicomweb/studies"), params={key: "CTHEAD"})
        assert response.status_code == 200
        assert len(response.json()) == 3  # the key was not applied (PS3.18 8.3: unsupported, ignored)
        assert "ProcedureCodeSequence.CodeValue is not supported" in response.headers["Warning"]


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("ProcedureCodeSequence", "CTHEAD", "is a sequence"),
        ("PatientName.CodeValue", "X", "PatientName is not a sequence"),
        ("ProcedureCodeSequence.NoSuchThing", "X", "not a path of DICOM keywords"),
        ("includefield", "ProcedureCodeSequence.Bogus", "not a path of DICOM keywords"),
    ],
)
def test_malformed_sequence_keys_are_400(http, coded, key, value, message):
    response = http.get(http.url("/dicomweb/studies"), params={key: value})
    assert response.status_code == 400
    assert message in str(response.json())

"""C-FIND SCP on a live Q/R listener: DCMTK findscu (-P and -S) and pynetdicom (cancel, limit, errors)."""

from __future__ import annotations

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
)

from pacs.models import Patient, Study
from tests.dimse.qr_support import dcmtk, seed_study

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def qr(dimse_listener):
    return dimse_listener("qr").port("qr")


@pytest.fixture
def archive(storage_root, qr):
    """Three studies of two patients (one with a Chinese name), two series in the first."""
    return {
        "a": seed_study(count=2, series=2, patient_id="P1", patient_name="DOE^JOHN", StudyDate="20240105",
                        AccessionNumber="ACC001"),
        "b": seed_study(count=1, patient_id="P1", patient_name="DOE^JOHN", StudyDate="20240310",
                        AccessionNumber="ACC002", modality="MR"),
        "c": seed_study(count=1, patient_id="P2", patient_name="WANG^XIAOMING=王^小明",
                        SpecificCharacterSet="ISO_IR 192", StudyDate="20231120", AccessionNumber="XYZ"),
    }


def findscu(port, tmp_path, *keys, model="-S", calling="FINDSCU"):
    out = tmp_path / f"find{len(list(tmp_path.iterdir()))}"
    out.mkdir()
    args = [model, "-aet", calling, "-aec", "QRSCP", "-X", "-od", out]
    for key in keys:
        args += ["-k", key]
    result = dcmtk("findscu", *args, "127.0.0.1", port)
    responses = [dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]
    return result, responses


@pytest.mark.parametrize("model", ["-S", "-P"])
def test_findscu_study_level_wildcards_and_ranges(qr, archive, tmp_path, model):
    result, rsp = findscu(qr, tmp_path, "QueryRetrieveLevel=STUDY", "PatientName=doe*", "StudyDate=20240101-",
                          "StudyInstanceUID", "AccessionNumber", "ModalitiesInStudy",
                          "NumberOfStudyRelatedInstances", model=model)
    assert result.returncode == 0, result.stderr
    found = {ds.AccessionNumber: ds for ds in rsp}
    assert sorted(found) == ["ACC001", "ACC002"]
    assert found["ACC001"].NumberOfStudyRelatedInstances == 4
    assert found["ACC001"].StudyInstanceUID == archive["a"]["study"]
    assert found["ACC002"].ModalitiesInStudy == "MR"
    assert all(ds.SpecificCharacterSet == "ISO_IR 192" for ds in rsp)
    # Only requested keys (plus the level's unique keys and the standard ones) come back.
    assert "StudyDescription" not in found["ACC001"] and "PatientBirthDate" not in found["ACC001"]


def test_findscu_patient_level_with_counts_and_chinese_name(qr, archive, tmp_path):
    result, rsp = findscu(qr, tmp_path, "QueryRetrieveLevel=PATIENT", "PatientName", "PatientID",
                          "NumberOfPatientRelatedStudies", "NumberOfPatientRelatedInstances", model="-P")
    assert result.returncode == 0, result.stderr
    found = {ds.PatientID: ds for ds in rsp}
    assert found["P1"].NumberOfPatientRelatedStudies == 2 and found["P1"].NumberOfPatientRelatedInstances == 5
    assert str(found["P2"].PatientName) == "WANG^XIAOMING=王^小明"


@pytest.mark.parametrize("model", ["-S", "-P"])
def test_findscu_series_and_image_levels(qr, archive, tmp_path, model):
    study = archive["a"]
    result, rsp = findscu(qr, tmp_path, "QueryRetrieveLevel=SERIES", f"StudyInstanceUID={study['study']}",
                          "SeriesInstanceUID", "Modality", "NumberOfSeriesRelatedInstances", "PatientID=P1",
                          model=model)
    assert result.returncode == 0, result.stderr
    assert sorted(ds.SeriesInstanceUID for ds in rsp) == sorted(study["series"])
    assert all(ds.NumberOfSeriesRelatedInstances == 2 and ds.Modality == "CT" for ds in rsp)
    series_list = "\\".join(study["series"])
    result, rsp = findscu(qr, tmp_path, "QueryRetrieveLevel=IMAGE", f"StudyInstanceUID={study['study']}",
                          f"SeriesInstanceUID={series_list}", "SOPInstanceUID", "InstanceNumber=1",
                          "PatientID=P1", model=model)
    assert result.returncode == 0, result.stderr
    assert len(rsp) == 2 and all(ds.InstanceNumber == 1 for ds in rsp)
    assert {ds.SOPInstanceUID for ds in rsp} <= set(study["sops"])


def test_findscu_question_mark_and_open_start_range(qr, archive, tmp_path):
    result, rsp = findscu(qr, tmp_path, "QueryRetrieveLevel=STUDY", "AccessionNumber=ACC00?",
                          "StudyDate=-20240105")
    assert result.returncode == 0, result.stderr
    assert [ds.AccessionNumber for ds in rsp] == ["ACC001"]
    result, rsp = findscu(qr, tmp_path, "QueryRetrieveLevel=STUDY", "SpecificCharacterSet=ISO_IR 192",
                          "PatientName=王*", "AccessionNumber")
    assert [ds.AccessionNumber for ds in rsp] == ["XYZ"]


def _find(port, identifier, model=StudyRootQueryRetrieveInformationModelFind):
    ae = AE(ae_title="PYFIND")
    ae.add_requested_context(model)
    assoc = ae.associate("127.0.0.1", port, ae_title="QRSCP")
    assert assoc.is_established
    try:
        return [(status, ds) for status, ds in assoc.send_c_find(identifier, model)]
    finally:
        assoc.release()


def _identifier(level, **keys):
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for key, value in keys.items():
        setattr(ds, key, value)
    return ds


@pytest.mark.parametrize(
    "identifier, status, comment",
    [
        (_identifier("STUDY", SOPInstanceUID="1.2.3"), 0xA900, "not allowed"),
        (_identifier("FRAME", StudyInstanceUID=""), 0xA900, "Unknown QueryRetrieveLevel"),
        (_identifier("", PatientID="P1"), 0xA900, "missing"),
        (_identifier("STUDY", StudyDate="2024-01"), 0xC000, "StudyDate"),
        (_identifier("PATIENT", PatientID="P1"), 0xA900, "Study Root"),
    ],
)
def test_bad_identifiers_get_a_failure_with_comment_and_listener_survives(qr, archive, identifier, status,
                                                                          comment):
    responses = _find(qr, identifier)
    final = responses[-1][0]
    assert final.Status == status
    assert comment in final.ErrorComment
    ok = _find(qr, _identifier("STUDY", AccessionNumber="ACC001"))
    assert [s.Status for s, _ in ok] == [0xFF00, 0x0000]


def test_missing_query_retrieve_level_element(qr, archive):
    ds = Dataset()
    ds.PatientID = "P1"
    final = _find(qr, ds)[-1][0]
    assert final.Status == 0xA900 and "missing" in final.ErrorComment


def test_unsupported_optional_key_gives_pending_warning(qr, archive):
    responses = _find(qr, _identifier("STUDY", AccessionNumber="ACC001", OtherPatientIDs="X"))
    assert [s.Status for s, _ in responses] == [0xFF01, 0x0000]
    assert responses[0][1].OtherPatientIDs in (None, "")


def test_result_limit_answers_a_warning_never_a_silent_cap(qr, archive, settings):
    settings.PACS_QR_MAX_RESULTS = 2
    responses = _find(qr, _identifier("STUDY", StudyInstanceUID=""))
    assert [s.Status for s, _ in responses] == [0xFF00, 0xFF00, 0xB001]
    assert "refine" in responses[-1][0].ErrorComment
    settings.PACS_QR_MAX_RESULTS = 3
    responses = _find(qr, _identifier("STUDY", StudyInstanceUID=""))
    assert [s.Status for s, _ in responses] == [0xFF00, 0xFF00, 0xFF00, 0x0000]


def _index_rows_only(count: int) -> None:
    """*count* more studies of patient MANY as bare index rows (no files).

    Test data shortcut, like bench_qr's: the archive writes through
    ``instance_ingest`` (~10 ms per instance), far too slow for the thousands of
    matches a cancel test needs, now that C-FIND answers ~30 matches per ms.
    """
    patient = Patient.objects.get(patient_id="MANY")
    Study.objects.bulk_create(
        [Study(patient=patient, study_instance_uid=generate_uid(), accession_number=f"M{i:05d}") for i in range(count)],
        batch_size=1000,
    )


def test_cancel_ends_the_find_with_fe00(qr, storage_root):
    seed_study(count=1, patient_id="MANY", patient_name="MANY^STUDIES")
    _index_rows_only(3000)
    ae = AE(ae_title="PYFIND")
    ae.add_requested_context(PatientRootQueryRetrieveInformationModelFind)
    assoc = ae.associate("127.0.0.1", qr, ae_title="QRSCP")
    statuses = []
    for status, _ in assoc.send_c_find(_identifier("STUDY", StudyInstanceUID="", SOPClassesInStudy=""),
                                       PatientRootQueryRetrieveInformationModelFind, msg_id=7):
        statuses.append(status.Status)
        if len(statuses) == 1:
            assoc.send_c_cancel(7, query_model=PatientRootQueryRetrieveInformationModelFind)
    assoc.release()
    assert statuses[-1] == 0xFE00
    assert 1 <= statuses.count(0xFF00) < 3001

"""pacs.matching: PS3.4 C.2.2.2 matching over the index, and response identifiers."""

from __future__ import annotations

import datetime

import pytest
from pydicom.uid import generate_uid

from pacs import matching
from pacs.matching import MatchingError, level_identifier, level_queryset, unsupported_keys, value_q
from pacs.matching.keys import MODELS
from pacs.models import Instance, Series, Study
from pacs.services.ingest import instance_ingest
from tests import dicom_factories as f

pytestmark = pytest.mark.django_db


def _ingest(**kwargs):
    return instance_ingest(source=f.encode(f.ct_dataset(**kwargs)))


@pytest.fixture
def index(archive_config):
    """Three patients, four studies, mixed modalities and a Chinese name."""
    a = _ingest(patient_id="P1", patient_name="DOE^JOHN", StudyDate="20240105", StudyTime="101500",
                AccessionNumber="ACC001", StudyDescription="CT HEAD")
    _ingest(patient_id="P1", patient_name="DOE^JOHN", study_uid=a.study_instance_uid, modality="SR",
            SeriesNumber=2, StudyDate="20240105")
    b = _ingest(patient_id="P2", patient_name="DOE^JANE", StudyDate="20240210", StudyTime="143000",
                AccessionNumber="ACC002", modality="MR", StudyDescription="MR KNEE")
    c = _ingest(patient_id="P3", patient_name="WANG^XIAOMING=王^小明", SpecificCharacterSet="ISO_IR 192",
                StudyDate="20231231", StudyTime="235959", AccessionNumber="XYZ9", modality="CT",
                StudyDescription="胸部 CT")
    d = _ingest(patient_id="P3", patient_name="WANG^XIAOMING=王^小明", SpecificCharacterSet="ISO_IR 192",
                StudyDate="20240301", StudyTime="080000", AccessionNumber="acc003", modality="CTX")
    return {"a": a, "b": b, "c": c, "d": d}


def _studies(filters, **kwargs):
    return sorted(level_queryset("STUDY", filters, **kwargs).values_list("accession_number", flat=True))


def test_single_value_and_universal_matching(index):
    assert _studies({"AccessionNumber": "ACC002"}) == ["ACC002"]
    assert _studies({"AccessionNumber": ""}) == ["ACC001", "ACC002", "XYZ9", "acc003"]
    assert _studies({"AccessionNumber": "*"}) == ["ACC001", "ACC002", "XYZ9", "acc003"]
    assert _studies({"PatientID": "P3"}) == ["XYZ9", "acc003"]


def test_wildcards_are_case_sensitive_for_text(index):
    assert _studies({"AccessionNumber": "ACC*"}) == ["ACC001", "ACC002"]
    assert _studies({"AccessionNumber": "acc*"}) == ["acc003"]
    assert _studies({"AccessionNumber": "ACC00?"}) == ["ACC001", "ACC002"]
    assert _studies({"StudyDescription": "*KNEE"}) == ["ACC002"]
    # Regex metacharacters in a value are literal.
    assert _studies({"AccessionNumber": "AC.001"}) == []


def test_person_names_match_every_group_case_insensitively(index):
    assert _studies({"PatientName": "doe^j*"}) == ["ACC001", "ACC002"]
    assert _studies({"PatientName": "WANG^XIAOMING"}) == ["XYZ9", "acc003"]
    assert _studies({"PatientName": "王*"}) == ["XYZ9", "acc003"]
    assert _studies({"PatientName": "*小明"}) == ["XYZ9", "acc003"]
    assert _studies({"PatientName": "wang*=王^小明"}) == ["XYZ9", "acc003"]
    assert _studies({"PatientName": "WANG*=李*"}) == []


def test_person_name_case_sensitivity_is_configurable(index, settings):
    settings.PACS_PN_CASE_INSENSITIVE = False
    assert _studies({"PatientName": "doe*"}) == []
    assert _studies({"PatientName": "DOE*"}) == ["ACC001", "ACC002"]


def test_fuzzy_person_name_matches_any_component_prefix(index):
    assert _studies({"PatientName": "jan"}, fuzzy=True) == ["ACC002"]
    assert _studies({"PatientName": "xiao"}, fuzzy=True) == ["XYZ9", "acc003"]
    assert _studies({"PatientName": "xiao"}) == []


def test_date_ranges_open_on_either_side(index):
    assert _studies({"StudyDate": "20240105"}) == ["ACC001"]
    assert _studies({"StudyDate": "20240101-"}) == ["ACC001", "ACC002", "acc003"]
    assert _studies({"StudyDate": "-20240105"}) == ["ACC001", "XYZ9"]
    assert _studies({"StudyDate": "20240106-20240301"}) == ["ACC002", "acc003"]
    assert _studies({"StudyDate": "2024.01.05"}) == ["ACC001"]


def test_time_ranges_and_partial_times(index):
    assert _studies({"StudyTime": "1015"}) == ["ACC001"]
    assert _studies({"StudyTime": "14"}) == ["ACC002"]
    assert _studies({"StudyTime": "-1015"}) == ["ACC001", "acc003"]
    assert _studies({"StudyTime": "2359-"}) == ["XYZ9"]
    assert _studies({"StudyTime": "10:15:00"}) == ["ACC001"]


@pytest.mark.parametrize(
    "filters",
    [{"StudyDate": "2024010"}, {"StudyDate": "20241301"}, {"StudyDate": "x-20240101"}, {"StudyTime": "25"},
     {"StudyInstanceUID": "1.2.abc"}, {"NumberOfStudyRelatedInstances": "many"}],
)
def test_malformed_values_raise_cannot_understand(index, filters):
    with pytest.raises(MatchingError) as info:
        list(level_queryset("STUDY", filters))
    assert info.value.dicom_status == 0xC000 and info.value.http_status == 400
    assert list(filters)[0] in info.value.message


def test_uid_lists_with_backslash_or_comma(index):
    a, b, c = (index[k].study_instance_uid for k in "abc")
    assert _studies({"StudyInstanceUID": f"{a}\\{b}"}) == ["ACC001", "ACC002"]
    assert _studies({"StudyInstanceUID": f"{a},{c}"}) == ["ACC001", "XYZ9"]
    assert _studies({"StudyInstanceUID": [b, c]}) == ["ACC002", "XYZ9"]
    assert _studies({"0020000D": a}) == ["ACC001"]


def test_modalities_in_study_matches_whole_tokens(index):
    assert _studies({"ModalitiesInStudy": "CT"}) == ["ACC001", "XYZ9"]
    assert _studies({"ModalitiesInStudy": "SR"}) == ["ACC001"]
    assert _studies({"ModalitiesInStudy": "MR\\SR"}) == ["ACC001", "ACC002"]
    assert _studies({"ModalitiesInStudy": "CT*"}) == ["ACC001", "XYZ9", "acc003"]


def test_upper_level_keys_match_at_lower_levels(index):
    series = level_queryset("SERIES", {"PatientName": "DOE^JOHN", "Modality": "SR"})
    assert [s.modality for s in series] == ["SR"]
    images = level_queryset("IMAGE", {"StudyInstanceUID": index["a"].study_instance_uid})
    assert images.count() == 2
    patients = level_queryset("PATIENT", {"PatientName": "DOE*"})
    assert sorted(p.patient_id for p in patients) == ["P1", "P2"]


def test_keys_of_lower_levels_and_bad_levels_are_rejected(index):
    with pytest.raises(MatchingError) as info:
        level_queryset("STUDY", {"SOPInstanceUID": generate_uid()})
    assert info.value.dicom_status == 0xA900 and "not allowed" in info.value.message
    with pytest.raises(MatchingError, match="Modality is a SERIES level key"):
        level_queryset("PATIENT", {"Modality": "CT"})
    with pytest.raises(MatchingError, match="Unknown QueryRetrieveLevel"):
        level_queryset("FRAME", {})
    with pytest.raises(MatchingError, match="missing"):
        level_queryset("", {})
    with pytest.raises(MatchingError, match="not a DICOM keyword"):
        level_queryset("STUDY", {"NoSuchKeyword": "x"})


def test_unsupported_keys_are_reported_not_matched(index):
    assert unsupported_keys("STUDY", ["PatientName", "OtherPatientIDs", "QueryRetrieveLevel",
                                      "SOPClassesInStudy"]) == ["OtherPatientIDs", "SOPClassesInStudy"]
    assert len(_studies({"OtherPatientIDs": "X"})) == 4


def test_level_identifier_returns_requested_and_computed_keys(index, django_assert_num_queries):
    study = level_queryset("STUDY", {"AccessionNumber": "ACC001"}).get()
    with django_assert_num_queries(0):
        ds = level_identifier(
            study, "STUDY",
            ["PatientName", "StudyDate", "StudyTime", "ModalitiesInStudy", "NumberOfStudyRelatedSeries",
             "NumberOfStudyRelatedInstances", "NumberOfPatientRelatedStudies", "OtherPatientIDs",
             "RetrieveAETitle", "ReferencedStudySequence"],
            retrieve_aet="QRSCP",
        )
    assert ds.SpecificCharacterSet == "ISO_IR 192" and ds.QueryRetrieveLevel == "STUDY"
    assert ds.PatientID == "P1" and ds.StudyInstanceUID == index["a"].study_instance_uid
    assert str(ds.PatientName) == "DOE^JOHN"
    assert (ds.StudyDate, ds.StudyTime) == ("20240105", "101500")
    assert list(ds.ModalitiesInStudy) == ["CT", "SR"]
    assert (ds.NumberOfStudyRelatedSeries, ds.NumberOfStudyRelatedInstances) == (2, 2)
    assert ds.NumberOfPatientRelatedStudies == 1
    assert ds.OtherPatientIDs is None or ds.OtherPatientIDs == ""
    assert ds.RetrieveAETitle == "QRSCP"
    assert len(ds.ReferencedStudySequence) == 0
    assert "SOPInstanceUID" not in ds and "AccessionNumber" not in ds
    with django_assert_num_queries(1):
        ds = level_identifier(study, "STUDY", ["SOPClassesInStudy"])
    assert ds.SOPClassesInStudy == ["1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.7"]


def test_level_identifier_decoded_unicode_encodes_as_utf8(index):
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    study = level_queryset("STUDY", {"AccessionNumber": "XYZ9"}).get()
    ds = level_identifier(study, "STUDY", ["PatientName", "StudyDescription"])
    assert str(ds.PatientName) == "WANG^XIAOMING=王^小明" and ds.StudyDescription == "胸部 CT"
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, True
    write_dataset(buffer, ds)
    assert "王^小明".encode() in buffer.getvalue()


def test_level_identifier_at_image_and_series_levels(index, django_assert_num_queries):
    instance = level_queryset("IMAGE", {"SOPInstanceUID": index["b"].sop_instance_uid}).get()
    with django_assert_num_queries(0):
        ds = level_identifier(instance, "IMAGE", ["SOPClassUID", "InstanceNumber", "Rows", "PatientName",
                                                 "Modality", "0020000D"])
    assert (ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID) == (
        "P2", index["b"].study_instance_uid, index["b"].series_instance_uid, index["b"].sop_instance_uid)
    assert ds.Modality == "MR" and ds.Rows == 32 and ds.InstanceNumber == 1
    series = level_queryset("SERIES", {"SeriesInstanceUID": index["b"].series_instance_uid}).get()
    ds = level_identifier(series, "SERIES", ["NumberOfSeriesRelatedInstances", "SOPInstanceUID"])
    assert ds.NumberOfSeriesRelatedInstances == 1 and "SOPInstanceUID" not in ds


def test_queryset_fetches_related_rows_in_one_query(index, django_assert_num_queries):
    with django_assert_num_queries(1):
        rows = [level_identifier(i, "IMAGE", ["PatientName", "StudyDate"])
                for i in level_queryset("IMAGE", {}).iterator()]
    assert len(rows) == Instance.objects.count() == 5


def test_value_q_datetime_ranges_on_a_datetime_field(index):
    Study.objects.filter(accession_number="ACC002").update(
        created_at=datetime.datetime(2020, 6, 1, 12, 0, tzinfo=datetime.timezone.utc))
    q = value_q("created_at", "DT", "2020-20201231")
    assert list(Study.objects.filter(q).values_list("accession_number", flat=True)) == ["ACC002"]
    q = value_q("created_at", "DT", "-202006011159")
    assert not Study.objects.filter(q).exists()
    q = value_q("created_at", "DT", "20200601120000+0000")
    assert Study.objects.filter(q).count() == 1
    assert value_q("created_at", "DT", "-") is None
    with pytest.raises(MatchingError):
        value_q("created_at", "DT", "2020-13")


def test_numbers_match_exactly(index):
    assert _studies({"NumberOfStudyRelatedSeries": "2"}) == ["ACC001"]
    assert Series.objects.filter(value_q("series_number", "IS", "2")).count() == 1


def test_levels_and_table_are_consistent():
    assert matching.LEVELS == ("PATIENT", "STUDY", "SERIES", "IMAGE")
    for level, keys in matching.LEVEL_KEYS.items():
        model = MODELS[level]
        for key in keys.values():
            if key.field:
                model._meta.get_field(key.field)


def test_identifier_rows_cost_a_constant_number_of_queries(index, django_assert_num_queries):
    """C-FIND's path: one query for the rows, one for SOPClassesInStudy, however many matches."""
    plan = matching.identifier_plan("STUDY", ("PatientName", "ModalitiesInStudy", "NumberOfStudyRelatedInstances",
                                              "SOPClassesInStudy", "StudyDate"))
    for filters, count in (({"AccessionNumber": "ACC001"}, 1), ({}, 4)):
        with django_assert_num_queries(2):
            rows = list(matching.identifier_rows(level_queryset("STUDY", filters), plan))
        assert len(rows) == count
    plan = matching.identifier_plan("SERIES", ("Modality", "StudyDate", "PatientID"))
    with django_assert_num_queries(1):
        assert len(list(matching.identifier_rows(level_queryset("SERIES", {"PatientName": "doe*"}), plan))) == 3


def test_identifier_rows_match_level_identifier(index):
    keywords = ("PatientName", "StudyDate", "StudyTime", "ModalitiesInStudy", "SOPClassesInStudy",
                "NumberOfStudyRelatedSeries", "RetrieveAETitle", "OtherPatientIDs")
    plan = matching.identifier_plan("STUDY", keywords)
    rows = matching.identifier_rows(level_queryset("STUDY", {}), plan, retrieve_aet="QRSCP")
    studies = level_queryset("STUDY", {})
    for items, study in zip(rows, studies, strict=True):
        assert matching.identifier_dataset(items) == level_identifier(study, "STUDY", keywords, retrieve_aet="QRSCP")
    acc001 = level_identifier(Study.objects.get(accession_number="ACC001"), "STUDY", keywords)
    assert acc001.ModalitiesInStudy == ["CT", "SR"] and acc001.NumberOfStudyRelatedSeries == 2

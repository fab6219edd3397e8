"""Modality Worklist C-FIND against the live worklist listener, with DCMTK findscu -W and pynetdicom."""

from __future__ import annotations

import datetime

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import ModalityWorklistInformationFind

from tests.worklist.conftest import step_fields
from worklist.choices import StepStatus

pytestmark = pytest.mark.django_db(transaction=True)

TODAY = datetime.date.today()
TOMORROW = TODAY + datetime.timedelta(days=1)
YESTERDAY = TODAY - datetime.timedelta(days=1)


def da(day: datetime.date) -> str:
    return day.strftime("%Y%m%d")


SPS = "ScheduledProcedureStepSequence[0]."
# What a CT modality sends for "today's work on my station" (issue keys).
MODALITY_RETURN_KEYS = [
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyInstanceUID",
    "RequestedProcedureID",
    "RequestedProcedureDescription",
    SPS + "ScheduledProcedureStepStartTime",
    SPS + "ScheduledProcedureStepDescription",
    SPS + "ScheduledProcedureStepID",
    SPS + "ScheduledStationName",
    SPS + "ScheduledPerformingPhysicianName",
]


def modality_keys(charset: str | None = "ISO_IR 192", *, date: str | None = None, station: str = "CT01",
                  modality: str = "CT") -> list[str]:
    keys = [] if charset is None else [f"SpecificCharacterSet={charset}"]
    keys += MODALITY_RETURN_KEYS
    keys += [
        f"{SPS}Modality={modality}",
        f"{SPS}ScheduledStationAETitle={station}",
        f"{SPS}ScheduledProcedureStepStartDate={date if date is not None else da(TODAY)}",
    ]
    return keys


@pytest.fixture
def schedule(make_item):
    """Today's CT01 item, plus items findscu must not see for that query."""
    wanted = make_item()
    make_item(patient_id="P002", patient_name="ZHANG^SAN=张^三", accession_number="A002",
              steps=[step_fields(scheduled_station_ae_title="CT02", scheduled_procedure_step_id="S2")])
    make_item(patient_id="P003", patient_name="LIU^YANG", accession_number="A003",
              steps=[step_fields(scheduled_procedure_step_start_date=TOMORROW, scheduled_procedure_step_id="S3")])
    make_item(patient_id="P004", patient_name="CHEN^JING", accession_number="A004",
              steps=[step_fields(modality="MR", scheduled_procedure_step_id="S4")])
    done = make_item(patient_id="P005", patient_name="ZHAO^LEI", accession_number="A005",
                     steps=[step_fields(scheduled_procedure_step_id="S5")])
    done.steps.update(scheduled_procedure_step_status=StepStatus.COMPLETED)
    return wanted


def test_modality_sees_todays_ct_items_for_its_station_with_requested_keys_only(findscu, schedule):
    proc, responses = findscu(*modality_keys())

    assert proc.returncode == 0, proc.stderr
    assert len(responses) == 1
    ds, raw = responses[0]
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert str(ds.PatientName) == "WANG^XIAOMING=王^小明"
    assert "王^小明".encode() in raw
    assert ds.PatientID == "P001"
    assert ds.PatientBirthDate == "19800102"
    assert ds.PatientSex == "M"
    assert ds.AccessionNumber == "A001"
    assert ds.StudyInstanceUID == schedule.study_instance_uid
    assert ds.RequestedProcedureID == "RP001"
    assert ds.RequestedProcedureDescription == "CT chest"
    assert len(ds.ScheduledProcedureStepSequence) == 1
    sps = ds.ScheduledProcedureStepSequence[0]
    assert sps.Modality == "CT"
    assert sps.ScheduledStationAETitle == "CT01"
    assert sps.ScheduledProcedureStepStartDate == da(TODAY)
    assert sps.ScheduledProcedureStepStartTime == "090000"
    assert sps.ScheduledProcedureStepDescription == "Chest plain"
    assert sps.ScheduledProcedureStepID == "SPS001"
    assert sps.ScheduledStationName == "CTROOM1"
    assert str(sps.ScheduledPerformingPhysicianName) == "LI^NA"
    # Exactly the requested attributes, nothing more (PS3.4 C.2.2.1.2).
    top = {e.keyword for e in ds if e.tag.group != 0x0002}
    assert top == {"SpecificCharacterSet", "ScheduledProcedureStepSequence",
                   *[k for k in MODALITY_RETURN_KEYS if "." not in k]}
    assert {e.keyword for e in sps} == {
        "Modality", "ScheduledStationAETitle", "ScheduledProcedureStepStartDate", "ScheduledProcedureStepStartTime",
        "ScheduledProcedureStepDescription", "ScheduledProcedureStepID", "ScheduledStationName",
        "ScheduledPerformingPhysicianName",
    }


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        (f"{da(TODAY)}-", {"P001", "P003"}),  # open end
        (f"-{da(TODAY)}", {"P001"}),  # open start
        (f"{da(YESTERDAY)}-{da(TOMORROW)}", {"P001", "P003"}),
        (f"{da(TOMORROW)}", {"P003"}),
        ("", {"P001", "P003"}),  # universal
    ],
)
def test_start_date_single_and_ranges_inside_the_sequence(findscu, schedule, date, expected):
    proc, responses = findscu(*modality_keys(date=date))
    assert proc.returncode == 0, proc.stderr
    assert {ds.PatientID for ds, _ in responses} == expected


def test_start_time_range_and_universal_keys(findscu, make_item):
    make_item(patient_id="EARLY", steps=[step_fields(scheduled_procedure_step_start_time=datetime.time(8, 15))])
    make_item(patient_id="LATE", accession_number="A9", patient_name="LATE^ONE",
              steps=[step_fields(scheduled_procedure_step_start_time=datetime.time(14, 0))])

    _, morning = findscu("PatientID", f"{SPS}ScheduledProcedureStepStartTime=0800-1200", f"{SPS}Modality")
    _, afternoon = findscu("PatientID", f"{SPS}ScheduledProcedureStepStartTime=13-")
    _, everything = findscu("PatientID", "PatientName", f"{SPS}Modality", f"{SPS}ScheduledStationAETitle")

    assert [ds.PatientID for ds, _ in morning] == ["EARLY"]
    assert [ds.PatientID for ds, _ in afternoon] == ["LATE"]
    assert {ds.PatientID for ds, _ in everything} == {"EARLY", "LATE"}


def test_patient_name_wildcards_in_either_group(findscu, schedule):
    _, by_alphabetic = findscu("SpecificCharacterSet=ISO_IR 192", "PatientName=wang*", "PatientID")
    _, by_ideographic = findscu("SpecificCharacterSet=ISO_IR 192", "PatientName=王*", "PatientID")
    _, by_question = findscu("SpecificCharacterSet=ISO_IR 192", "PatientName=ZHANG^SA?", "PatientID")

    assert [ds.PatientID for ds, _ in by_alphabetic] == ["P001"]
    assert [ds.PatientID for ds, _ in by_ideographic] == ["P001"]
    assert [ds.PatientID for ds, _ in by_question] == ["P002"]


def test_status_key_selects_finished_steps_otherwise_only_schedulable(findscu, schedule):
    _, default = findscu("PatientID", f"{SPS}ScheduledProcedureStepStatus")
    _, completed = findscu("PatientID", f"{SPS}ScheduledProcedureStepStatus=COMPLETED")

    assert "P005" not in {ds.PatientID for ds, _ in default}
    assert [ds.PatientID for ds, _ in completed] == ["P005"]
    assert completed[0][0].ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus == "COMPLETED"


def test_performing_physician_and_accession_matching(findscu, schedule, make_item):
    make_item(patient_id="P010", accession_number="X-77",
              steps=[step_fields(scheduled_performing_physician_name="SUN^WU", scheduled_procedure_step_id="S10")])
    _, by_physician = findscu("PatientID", f"{SPS}ScheduledPerformingPhysicianName=SUN*")
    _, by_accession = findscu("PatientID", "AccessionNumber=X-77")
    assert [ds.PatientID for ds, _ in by_physician] == ["P010"]
    assert [ds.PatientID for ds, _ in by_accession] == ["P010"]


# --- Character sets ---------------------------------------------------------------------


def test_gb18030_modality_gets_chinese_in_gb18030(findscu, schedule):
    _, responses = findscu(*modality_keys("GB18030"))

    ds, raw = responses[0]
    assert ds.SpecificCharacterSet == "GB18030"
    assert str(ds.PatientName) == "WANG^XIAOMING=王^小明"
    assert "王^小明".encode("gb18030") in raw
    assert "王".encode() not in raw


def test_latin1_modality_gets_alphabetic_group(findscu, schedule):
    _, responses = findscu(*modality_keys("ISO_IR 100"))

    ds, raw = responses[0]
    assert ds.SpecificCharacterSet == "ISO_IR 100"
    assert raw.count(b"WANG^XIAOMING") == 1
    assert str(ds.PatientName) == "WANG^XIAOMING"
    assert b"?" not in raw


def test_latin1_modality_gets_pinyin_when_only_chinese_is_stored(findscu, make_item):
    make_item(patient_name="王^小明", requested_procedure_description="胸部平扫",
              steps=[step_fields(scheduled_performing_physician_name="欧阳娜娜")])

    _, responses = findscu(*modality_keys("ISO_IR 100"))

    ds, raw = responses[0]
    assert str(ds.PatientName) == "WANG^XIAOMING"
    assert ds.RequestedProcedureDescription == "XIONG BU PING SAO"
    assert str(ds.ScheduledProcedureStepSequence[0].ScheduledPerformingPhysicianName) == "OUYANG^NANA"
    assert b"?" not in raw
    assert all(byte < 0x80 for byte in raw[raw.index(b"WANG"):raw.index(b"WANG") + 13])


def test_modality_without_charset_gets_plain_ascii(findscu, make_item):
    make_item(patient_name="Müller^Jürgen", patient_id="DE1",
              steps=[step_fields(scheduled_procedure_step_description="Thorax ÜBERSICHT")])
    make_item(patient_name="李^娜", patient_id="CN1", accession_number="A2",
              steps=[step_fields(scheduled_procedure_step_id="S2")])

    _, responses = findscu(*modality_keys(None))

    names = {ds.PatientID: (str(ds.PatientName), raw, ds) for ds, raw in responses}
    assert names["DE1"][0] == "Muller^Jurgen"
    assert names["CN1"][0] == "LI^NA"
    assert names["DE1"][2].ScheduledProcedureStepSequence[0].ScheduledProcedureStepDescription == "Thorax UBERSICHT"
    for _, raw, ds in names.values():
        assert "SpecificCharacterSet" not in ds
        assert b"?" not in raw


def test_latin1_modality_keeps_accented_latin_names(findscu, make_item):
    make_item(patient_name="Müller^Jürgen", patient_id="DE1")
    _, responses = findscu(*modality_keys("ISO_IR 100"))
    ds, raw = responses[0]
    assert str(ds.PatientName) == "Müller^Jürgen"
    assert "Müller".encode("latin-1") in raw


# --- Bad queries (pynetdicom SCU, to read status and comment) ----------------------------


def _c_find(port: int, identifier: Dataset) -> list[tuple[int, str, Dataset | None]]:
    ae = AE(ae_title="CT01")
    ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = ae.associate("127.0.0.1", port, ae_title="WORKLISTSCP")
    assert assoc.is_established
    try:
        return [
            (status.Status, str(status.get("ErrorComment", "")), ident)
            for status, ident in assoc.send_c_find(identifier, ModalityWorklistInformationFind)
        ]
    finally:
        assoc.release()


def test_query_retrieve_level_is_refused_with_comment(mwl_port, schedule):
    ds = Dataset()
    ds.QueryRetrieveLevel = "PATIENT"
    ds.PatientID = ""
    [(status, comment, _)] = _c_find(mwl_port, ds)
    assert status == 0xA900
    assert "QueryRetrieveLevel" in comment


def test_malformed_date_is_refused_and_listener_keeps_serving(mwl_port, schedule):
    bad = Dataset()
    bad.PatientID = ""
    step = Dataset()
    step.ScheduledProcedureStepStartDate = "2026-13-45"
    bad.ScheduledProcedureStepSequence = [step]
    [(status, comment, _)] = _c_find(mwl_port, bad)
    assert status == 0xC000
    assert "ScheduledProcedureStepStartDate" in comment

    good = Dataset()
    good.PatientID = "P001"
    results = _c_find(mwl_port, good)
    assert [s for s, _, _ in results] == [0xFF00, 0x0000]


def test_two_sequence_items_are_refused(mwl_port, schedule):
    ds = Dataset()
    ds.PatientID = ""
    ds.ScheduledProcedureStepSequence = [Dataset(), Dataset()]
    [(status, comment, _)] = _c_find(mwl_port, ds)
    assert status == 0xA900
    assert "one item" in comment


def test_unsupported_key_with_value_answers_pending_warning(mwl_port, schedule):
    ds = Dataset()
    ds.PatientID = "P001"
    ds.PatientWeight = "70"
    ds.ReferencedStudySequence = []
    results = _c_find(mwl_port, ds)
    assert [s for s, _, _ in results] == [0xFF01, 0x0000]
    identifier = results[0][2]
    assert identifier.PatientWeight in (None, "")
    assert len(identifier.ReferencedStudySequence) == 0

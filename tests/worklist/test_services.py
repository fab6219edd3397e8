"""Worklist services, selectors, charsets and housekeeping (no network)."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone
from pydicom.dataset import Dataset

from tests.worklist.conftest import item_fields, step_fields
from worklist.charsets import ResponseCharset, pinyin_person_name
from worklist.choices import StepStatus
from worklist.dicom import query_parse, step_identifier
from worklist.exceptions import ItemInvalid
from worklist.models import ScheduledProcedureStep, WorklistItem
from worklist.selectors import worklist_step_find
from worklist.services.housekeeping import (
    PURGE_SCHEDULE_NAME,
    worklist_items_purge,
    worklist_purge_schedule_ensure,
)
from worklist.services.items import worklist_item_create, worklist_item_update

pytestmark = pytest.mark.django_db


# --- Transliteration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("王^小明", "WANG^XIAOMING"),
        ("王小明", "WANG^XIAOMING"),
        ("欧阳娜娜", "OUYANG^NANA"),
        ("诸葛^亮", "ZHUGE^LIANG"),
        ("吕^布", "LV^BU"),
        ("SMITH^JOHN", "SMITH^JOHN"),
    ],
)
def test_pinyin_person_name(name, expected):
    assert pinyin_person_name(name) == expected


@pytest.mark.parametrize(
    ("terms", "stored", "sent"),
    [
        (["ISO_IR 192"], "WANG^XIAOMING=王^小明", "WANG^XIAOMING=王^小明"),
        (["GB18030"], "WANG^XIAOMING=王^小明", "WANG^XIAOMING=王^小明"),
        (["ISO 2022 IR 6", "ISO 2022 IR 58"], "WANG^XIAOMING=王^小明", "WANG^XIAOMING=王^小明"),
        (["ISO_IR 100"], "WANG^XIAOMING=王^小明", "WANG^XIAOMING"),
        (["ISO_IR 100"], "=王^小明", "WANG^XIAOMING"),
        (["ISO_IR 100"], "王^小明", "WANG^XIAOMING"),
        ([""], "Ångström^Zoë", "Angstrom^Zoe"),
        (["ISO_IR 999"], "王^小明", "WANG^XIAOMING"),  # unknown term: ASCII, never '?'
    ],
)
def test_response_charset_person_names(terms, stored, sent):
    assert ResponseCharset.for_terms(terms).person_name(stored) == sent


# --- Item services ------------------------------------------------------------------------


def test_create_generates_study_uid_and_name_groups():
    item = worklist_item_create(fields=item_fields(), steps=[step_fields()])
    assert item.study_instance_uid.startswith("1.2.826.0.1.3680043.8.498.")
    assert item.patient_name_alphabetic == "WANG^XIAOMING"
    assert item.patient_name_ideographic == "王^小明"
    assert item.steps.get().scheduled_procedure_step_status == StepStatus.SCHEDULED


def test_create_collects_every_error_and_saves_nothing():
    with pytest.raises(ItemInvalid) as caught:
        worklist_item_create(
            fields=item_fields(patient_name="A=B=C=D", study_instance_uid="1.2.x", patient_sex="Z"),
            steps=[step_fields(), step_fields(modality="M" * 17)],
        )
    errors = caught.value.errors
    assert {"PatientName", "StudyInstanceUID", "PatientSex", "ScheduledProcedureStepSequence"} <= set(errors)
    assert "Modality" in errors["ScheduledProcedureStepSequence"][1]
    assert WorklistItem.objects.count() == 0
    assert ScheduledProcedureStep.objects.count() == 0


def test_update_rejects_and_keeps_previous_values():
    item = worklist_item_create(fields=item_fields(), steps=[step_fields()])
    with pytest.raises(ItemInvalid):
        worklist_item_update(item_id=item.pk, fields={"accession_number": "X" * 17},
                             steps=[step_fields(scheduled_station_ae_title="CT02")])
    item.refresh_from_db()
    assert item.accession_number == "A001"
    assert item.steps.get().scheduled_station_ae_title == "CT01"


# --- Matching and response building --------------------------------------------------------


def _query(**keys) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = keys.pop("PatientName", "")
    ds.PatientID = ""
    step = Dataset()
    for keyword, value in keys.items():
        setattr(step, keyword, value)
    ds.ScheduledProcedureStepSequence = [step]
    return ds


def test_worklist_answer_costs_one_query(django_assert_num_queries):
    for n in range(20):
        worklist_item_create(fields=item_fields(patient_id=f"P{n}"),
                             steps=[step_fields(), step_fields(scheduled_procedure_step_id="B", modality="MR")])
    query = query_parse(_query(Modality="CT", ScheduledStationAETitle="CT01", ScheduledProcedureStepStartDate=""))
    with django_assert_num_queries(1):
        steps, unsupported = worklist_step_find(query)
        answers = [step_identifier(step, query) for step in steps]
    assert unsupported == []
    assert len(answers) == 20
    assert {str(a.PatientName) for a in answers} == {"WANG^XIAOMING"}
    assert answers[0].ScheduledProcedureStepSequence[0].Modality == "CT"


def test_empty_sequence_returns_whole_step_item():
    worklist_item_create(fields=item_fields(), steps=[step_fields()])
    ds = Dataset()
    ds.PatientID = ""
    ds.ScheduledProcedureStepSequence = []
    query = query_parse(ds)
    steps, _ = worklist_step_find(query)
    [answer] = [step_identifier(step, query) for step in steps]
    item = answer.ScheduledProcedureStepSequence[0]
    assert item.ScheduledStationAETitle == "CT01"
    assert item.ScheduledProcedureStepStatus == "SCHEDULED"
    assert "SpecificCharacterSet" not in answer  # none asked: default repertoire


def test_charset_override_of_the_calling_node_wins():
    worklist_item_create(fields=item_fields(), steps=[step_fields()])
    query = query_parse(_query(), charset_override="GB18030")
    steps, _ = worklist_step_find(query)
    [answer] = [step_identifier(step, query) for step in steps]
    assert answer.SpecificCharacterSet == "GB18030"
    assert str(answer.PatientName) == "WANG^XIAOMING=王^小明"


# --- Housekeeping ------------------------------------------------------------------------------


def test_purge_removes_only_items_finished_before_the_retention(settings):
    settings.PACS_WORKLIST_RETENTION_DAYS = 7
    old_done = worklist_item_create(fields=item_fields(patient_id="OLD"), steps=[step_fields()])
    recent_done = worklist_item_create(fields=item_fields(patient_id="RECENT"), steps=[step_fields()])
    half_done = worklist_item_create(fields=item_fields(patient_id="HALF"),
                                     steps=[step_fields(), step_fields(scheduled_procedure_step_id="B")])
    scheduled = worklist_item_create(fields=item_fields(patient_id="OPEN"), steps=[step_fields()])
    long_ago = timezone.now() - datetime.timedelta(days=10)
    ScheduledProcedureStep.objects.filter(item=old_done).update(
        scheduled_procedure_step_status=StepStatus.DISCONTINUED, status_changed_at=long_ago)
    ScheduledProcedureStep.objects.filter(item=recent_done).update(scheduled_procedure_step_status=StepStatus.COMPLETED)
    half_done.steps.filter(scheduled_procedure_step_id="SPS001").update(
        scheduled_procedure_step_status=StepStatus.COMPLETED, status_changed_at=long_ago)
    ScheduledProcedureStep.objects.filter(item=scheduled).update(status_changed_at=long_ago)

    removed = worklist_items_purge()

    assert removed == 1
    assert set(WorklistItem.objects.values_list("patient_id", flat=True)) == {"RECENT", "HALF", "OPEN"}
    # An explicit period overrides the setting.
    assert worklist_items_purge(older_than_days=0, now=timezone.now() + datetime.timedelta(seconds=1)) == 1
    assert not WorklistItem.objects.filter(patient_id="RECENT").exists()


def test_purge_schedule_is_created_once():
    from django_q.models import Schedule

    worklist_purge_schedule_ensure()
    worklist_purge_schedule_ensure()
    schedule = Schedule.objects.get(name=PURGE_SCHEDULE_NAME)
    assert schedule.func == "worklist.tasks.worklist_items_purge_task"
    assert schedule.schedule_type == Schedule.DAILY


def test_purge_task_runs_the_service(settings):
    from worklist.tasks import worklist_items_purge_task

    item = worklist_item_create(fields=item_fields(), steps=[step_fields()])
    item.steps.update(scheduled_procedure_step_status=StepStatus.COMPLETED,
                      status_changed_at=timezone.now() - datetime.timedelta(days=31))
    assert worklist_items_purge_task() == 1
    assert WorklistItem.objects.count() == 0


# --- Admin -------------------------------------------------------------------------------------


def test_admin_lists_searches_and_creates_through_the_service(admin_client):
    worklist_item_create(fields=item_fields(), steps=[step_fields()])
    assert admin_client.get("/admin/worklist/worklistitem/", {"q": "王"}).status_code == 200
    assert admin_client.get("/admin/worklist/worklistitem/", {"steps__modality": "CT"}).status_code == 200
    data = {
        "patient_name": "LI^NA=李^娜", "patient_id": "ADM1", "issuer_of_patient_id": "", "patient_birth_date": "",
        "patient_sex": "F", "admission_id": "", "accession_number": "ADM-A", "requested_procedure_id": "",
        "requested_procedure_description": "", "requested_procedure_priority": "", "referring_physician_name": "",
        "study_instance_uid": "",
        "steps-TOTAL_FORMS": "1", "steps-INITIAL_FORMS": "0", "steps-MIN_NUM_FORMS": "1", "steps-MAX_NUM_FORMS": "1000",
        "steps-0-scheduled_procedure_step_id": "S1", "steps-0-scheduled_procedure_step_status": "SCHEDULED",
        "steps-0-modality": "DX", "steps-0-scheduled_station_ae_title": "DX1", "steps-0-scheduled_station_name": "",
        "steps-0-scheduled_procedure_step_location": "", "steps-0-scheduled_procedure_step_start_date": "",
        "steps-0-scheduled_procedure_step_start_time": "", "steps-0-scheduled_procedure_step_description": "",
        "steps-0-scheduled_performing_physician_name": "",
    }
    response = admin_client.post("/admin/worklist/worklistitem/add/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    item = WorklistItem.objects.get(patient_id="ADM1")
    assert item.patient_name_ideographic == "李^娜"
    assert item.study_instance_uid
    assert item.steps.get().modality == "DX"

    data["patient_id"] = "ADM2"
    data["study_instance_uid"] = "not-a-uid"
    response = admin_client.post("/admin/worklist/worklistitem/add/", data)
    assert response.status_code == 200
    assert "StudyInstanceUID" in response.content.decode()
    assert not WorklistItem.objects.filter(patient_id="ADM2").exists()

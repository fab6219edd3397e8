"""MPPS N-CREATE / N-SET against the live worklist listener with a pynetdicom SCU (PS3.4 F.7)."""

from __future__ import annotations

import datetime

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, ModalityPerformedProcedureStep

from worklist.choices import StepStatus
from worklist.models import PerformedProcedureStep, PerformedSeries, ScheduledProcedureStep

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def mpps(mwl_port):
    """An association to the worklist listener offering MPPS; yields the association."""
    ae = AE(ae_title="CT01")
    ae.add_requested_context(ModalityPerformedProcedureStep)
    assoc = ae.associate("127.0.0.1", mwl_port, ae_title="WORKLISTSCP")
    assert assoc.is_established
    yield assoc
    if assoc.is_established:
        assoc.release()


def create_attributes(item, *, status: str = "IN PROGRESS", charset: str = "ISO_IR 192") -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = charset
    step = Dataset()
    step.StudyInstanceUID = item.study_instance_uid
    step.AccessionNumber = item.accession_number
    step.RequestedProcedureID = item.requested_procedure_id
    step.ScheduledProcedureStepID = "SPS001"
    step.ScheduledProcedureStepDescription = "Chest plain"
    ds.ScheduledStepAttributesSequence = [step]
    ds.PatientName = item.patient_name
    ds.PatientID = item.patient_id
    ds.PatientBirthDate = "19800102"
    ds.PatientSex = "M"
    ds.PerformedProcedureStepID = "PPS1"
    ds.PerformedStationAETitle = "CT01"
    ds.PerformedStationName = "CTROOM1"
    ds.PerformedLocation = "ROOM 1"
    ds.PerformedProcedureStepStartDate = datetime.date.today().strftime("%Y%m%d")
    ds.PerformedProcedureStepStartTime = "091500"
    ds.PerformedProcedureStepEndDate = None
    ds.PerformedProcedureStepEndTime = None
    ds.PerformedProcedureStepStatus = status
    ds.PerformedProcedureStepDescription = "Chest plain"
    ds.Modality = "CT"
    ds.PerformedSeriesSequence = []
    return ds


def completion(series_uid: str, *, status: str = "COMPLETED") -> Dataset:
    ds = Dataset()
    ds.PerformedProcedureStepStatus = status
    ds.PerformedProcedureStepEndDate = datetime.date.today().strftime("%Y%m%d")
    ds.PerformedProcedureStepEndTime = "093000"
    series = Dataset()
    series.SeriesInstanceUID = series_uid
    series.SeriesDescription = "Thorax 1mm"
    series.RetrieveAETitle = "STORESCP"
    series.PerformingPhysicianName = "LI^NA"
    series.ProtocolName = "CHEST"
    refs = []
    for _ in range(2):
        ref = Dataset()
        ref.ReferencedSOPClassUID = CTImageStorage
        ref.ReferencedSOPInstanceUID = generate_uid()
        refs.append(ref)
    series.ReferencedImageSequence = refs
    series.ReferencedNonImageCompositeSOPInstanceSequence = []
    ds.PerformedSeriesSequence = [series]
    return ds


def n_create(assoc, ds: Dataset, uid: str | None) -> Dataset:
    status, _ = assoc.send_n_create(ds, ModalityPerformedProcedureStep, uid)
    return status


def n_set(assoc, ds: Dataset, uid: str) -> Dataset:
    status, _ = assoc.send_n_set(ds, ModalityPerformedProcedureStep, uid)
    return status


def step_status(item) -> str:
    return ScheduledProcedureStep.objects.get(item=item).scheduled_procedure_step_status


def test_n_create_then_n_set_completed_moves_worklist_step_and_links_series(mpps, make_item, findscu):
    item = make_item()
    uid = generate_uid()

    status = n_create(mpps, create_attributes(item), uid)
    assert status.Status == 0x0000
    assert step_status(item) == StepStatus.IN_PROGRESS
    record = PerformedProcedureStep.objects.get(sop_instance_uid=uid)
    assert record.performed_procedure_step_status == "IN PROGRESS"
    assert record.study_instance_uid == item.study_instance_uid
    assert record.patient_name == "WANG^XIAOMING=王^小明"
    assert record.performed_procedure_step_start_time == datetime.time(9, 15)
    assert list(record.scheduled_steps.values_list("item_id", flat=True)) == [item.pk]

    series_uid = generate_uid()
    status = n_set(mpps, completion(series_uid), uid)
    assert status.Status == 0x0000
    assert step_status(item) == StepStatus.COMPLETED
    record.refresh_from_db()
    assert record.performed_procedure_step_status == "COMPLETED"
    assert record.performed_procedure_step_end_time == datetime.time(9, 30)
    series = PerformedSeries.objects.get(performed_step=record)
    assert (series.series_instance_uid, series.number_of_referenced_instances, series.retrieve_ae_title) == (
        series_uid, 2, "STORESCP")
    # Merged attribute list keeps what N-CREATE sent and what N-SET changed.
    assert record.attributes["00400253"]["Value"] == ["PPS1"]
    assert record.attributes["00400252"]["Value"] == ["COMPLETED"]

    # The finished step leaves the modality's default worklist.
    _, responses = findscu("PatientID", "ScheduledProcedureStepSequence[0].Modality=CT")
    assert responses == []


def test_n_set_on_completed_step_is_refused_with_comment_and_error_id(mpps, make_item):
    item = make_item()
    uid = generate_uid()
    n_create(mpps, create_attributes(item), uid)
    assert n_set(mpps, completion(generate_uid()), uid).Status == 0x0000

    again = Dataset()
    again.PerformedProcedureStepDescription = "changed afterwards"
    status = n_set(mpps, again, uid)

    # PS3.4 F.7.2.2.2: 0110 "Performed Procedure Step Object may no longer be updated", Error ID A710.
    assert status.Status == 0x0110
    assert "may no longer be updated" in status.ErrorComment
    assert status.ErrorID == 0xA710
    record = PerformedProcedureStep.objects.get(sop_instance_uid=uid)
    assert record.performed_procedure_step_description == "Chest plain"


def test_discontinued_moves_step_and_keeps_reason(mpps, make_item):
    item = make_item()
    uid = generate_uid()
    n_create(mpps, create_attributes(item), uid)

    ds = Dataset()
    ds.PerformedProcedureStepStatus = "DISCONTINUED"
    reason = Dataset()
    reason.CodeValue = "110514"
    reason.CodingSchemeDesignator = "DCM"
    reason.CodeMeaning = "Incorrect worklist entry selected"
    ds.PerformedProcedureStepDiscontinuationReasonCodeSequence = [reason]
    assert n_set(mpps, ds, uid).Status == 0x0000

    assert step_status(item) == StepStatus.DISCONTINUED
    record = PerformedProcedureStep.objects.get(sop_instance_uid=uid)
    assert record.discontinuation_reason == "Incorrect worklist entry selected"


def test_in_progress_n_set_keeps_step_in_progress(mpps, make_item):
    item = make_item()
    uid = generate_uid()
    n_create(mpps, create_attributes(item), uid)
    ds = Dataset()
    ds.PerformedSeriesSequence = completion(generate_uid()).PerformedSeriesSequence
    assert n_set(mpps, ds, uid).Status == 0x0000
    assert step_status(item) == StepStatus.IN_PROGRESS
    assert PerformedSeries.objects.filter(performed_step__sop_instance_uid=uid).count() == 1


def test_n_set_unknown_instance_is_0112(mpps, make_item):
    ds = Dataset()
    ds.PerformedProcedureStepStatus = "COMPLETED"
    status = n_set(mpps, ds, generate_uid())
    assert status.Status == 0x0112
    assert "no MPPS instance" in status.ErrorComment


def test_duplicate_n_create_is_0111_and_first_record_kept(mpps, make_item):
    item = make_item()
    uid = generate_uid()
    assert n_create(mpps, create_attributes(item), uid).Status == 0x0000
    assert n_create(mpps, create_attributes(item), uid).Status == 0x0111
    assert PerformedProcedureStep.objects.filter(sop_instance_uid=uid).count() == 1


def test_n_create_in_a_final_state_is_refused_and_nothing_moves(mpps, make_item):
    item = make_item()
    status = n_create(mpps, create_attributes(item, status="COMPLETED"), generate_uid())
    assert status.Status == 0x0106
    assert "IN PROGRESS" in status.ErrorComment
    assert step_status(item) == StepStatus.SCHEDULED
    assert not PerformedProcedureStep.objects.exists()


def test_n_create_without_status_is_0120(mpps, make_item):
    ds = create_attributes(make_item())
    del ds.PerformedProcedureStepStatus
    status = n_create(mpps, ds, generate_uid())
    assert status.Status == 0x0120


def test_n_set_with_unknown_status_value_is_0106(mpps, make_item):
    item = make_item()
    uid = generate_uid()
    n_create(mpps, create_attributes(item), uid)
    ds = Dataset()
    ds.PerformedProcedureStepStatus = "SCHEDULED"
    status = n_set(mpps, ds, uid)
    assert status.Status == 0x0106
    assert status.AttributeIdentifierList == 0x00400252
    assert step_status(item) == StepStatus.IN_PROGRESS


def test_n_create_without_uid_gets_one_assigned(mpps, make_item):
    item = make_item()
    status = n_create(mpps, create_attributes(item), None)
    assert status.Status == 0x0000
    record = PerformedProcedureStep.objects.get()
    assert record.sop_instance_uid.startswith("1.2.826.0.1.3680043.8.498.")
    assert step_status(item) == StepStatus.IN_PROGRESS


def test_unscheduled_mpps_is_recorded_without_links(mpps):
    ds = Dataset()
    ds.SpecificCharacterSet = "GB18030"
    step = Dataset()
    step.StudyInstanceUID = generate_uid()
    step.ScheduledProcedureStepID = ""
    ds.ScheduledStepAttributesSequence = [step]
    ds.PatientName = "李^娜"
    ds.PatientID = "WALKIN"
    ds.PerformedProcedureStepStatus = "IN PROGRESS"
    ds.Modality = "CT"
    uid = generate_uid()
    assert n_create(mpps, ds, uid).Status == 0x0000
    record = PerformedProcedureStep.objects.get(sop_instance_uid=uid)
    assert record.patient_name == "李^娜"
    assert record.scheduled_steps.count() == 0


def test_listener_survives_bad_mpps_and_still_answers(mpps, make_item):
    item = make_item()
    ds = Dataset()
    ds.PerformedProcedureStepStatus = "IN PROGRESS"
    ds.PerformedProcedureStepStartDate = "notadate"
    status = n_create(mpps, ds, generate_uid())
    assert status.Status == 0x0106
    assert n_create(mpps, create_attributes(item), generate_uid()).Status == 0x0000

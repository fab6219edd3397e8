"""SCU operations as jobs against live listeners: our own Q/R + Storage listeners and a receiver."""

from __future__ import annotations

import numpy as np
import pytest

from pacs.choices import JobState
from pacs.models import Instance, Job
from pacs.services.jobs import job_create, job_execute
from tests import dicom_factories as f
from tests.dimse.qr_support import free_port, node_add, receiver_start, seed_study

pytestmark = pytest.mark.django_db(transaction=True)


def _run(kind, **params):
    job = job_create(kind=kind, params=params, enqueue=False)
    return job_execute(job_id=job.pk)


@pytest.fixture
def listeners(dimse_listener):
    manager = dimse_listener("qr", "storage")
    node_add("QRSCP", manager.port("qr"), is_query_source=True)
    return manager


@pytest.fixture
def receiver(db):
    started = []

    def _start(ae_title="RECEIVER", transfer_syntaxes=None, **fields):
        rcv = receiver_start(ae_title, transfer_syntaxes)
        node_add(ae_title, rcv.port, **fields)
        started.append(rcv)
        return rcv

    yield _start
    for rcv in started:
        rcv.stop()


def test_verify_job_success_and_failure_with_retry(listeners):
    job = _run("verify", node="QRSCP")
    assert job.state == JobState.SUCCESS and job.result["status"] == "0x0000"
    assert (job.progress_done, job.progress_total) == (1, 1)
    node_add("DOWN", free_port())
    job = _run("verify", node="DOWN")
    assert job.state == JobState.RETRYING and job.next_attempt_at is not None
    assert "failed" in job.errors[-1]
    Job.objects.filter(pk=job.pk).update(max_attempts=1, state=JobState.PENDING)
    job = job_execute(job_id=job.pk)
    assert job.state == JobState.FAILURE and job.attempts == 2


def test_unknown_node_fails_without_retry(listeners):
    job = _run("verify", node="NOBODY")
    assert job.state == JobState.FAILURE and "NOBODY" in job.errors[-1]


def test_send_job_transcodes_for_the_receiver_and_tracks_progress(listeners, receiver):
    study = seed_study(count=3, transfer_syntax=f.J2K_LOSSLESS)
    other = seed_study(count=2)
    rcv = receiver("RECEIVER", [f.EXPLICIT_LE])
    job = _run("send", node="RECEIVER", study_instance_uids=[study["study"]],
               sop_instance_uids=[other["sops"][0]])
    assert job.state == JobState.SUCCESS, job.errors
    assert (job.progress_done, job.progress_failed, job.progress_total) == (4, 0, 4)
    assert job.result["transfer_syntaxes"] == {f.EXPLICIT_LE: 4}
    assert rcv.sop_uids() == sorted(study["sops"] + [other["sops"][0]])
    for ds in rcv.datasets:
        assert np.array_equal(ds.pixel_array, f.ct_dataset(instance_number=ds.InstanceNumber).pixel_array)


def test_send_job_as_stored_when_accepted_and_series_selection(listeners, receiver):
    study = seed_study(count=2, series=2, transfer_syntax=f.RLE)
    rcv = receiver("RECEIVER", [f.EXPLICIT_LE, f.RLE])
    job = _run("send", node="RECEIVER", series_instance_uids=[study["series"][1]])
    assert job.state == JobState.SUCCESS and job.result["transfer_syntaxes"] == {f.RLE: 2}
    assert rcv.sop_uids() == sorted(study["sops"][2:])


def test_send_job_with_refusing_peer_fails_and_retries(listeners, receiver):
    study = seed_study(count=2)
    rcv = receiver("RECEIVER")
    rcv.status = 0xA700
    job = _run("send", node="RECEIVER", study_instance_uids=[study["study"]])
    assert job.state == JobState.RETRYING
    assert job.progress_failed == 2 and "2 of 2" in job.errors[-1]
    assert any("0xA700" in e for e in job.errors)


@pytest.mark.parametrize("params, message", [
    ({}, "Nothing to send"),
    ({"study_instance_uids": ["1.2.3/../x"]}, "not a valid UID"),
    ({"study_instance_uids": ["1.2.3"]}, "None of the requested"),
])
def test_send_job_bad_parameters_fail_without_retry(listeners, receiver, params, message):
    receiver("RECEIVER")
    job = _run("send", node="RECEIVER", **params)
    assert job.state == JobState.FAILURE and message in job.errors[-1]


def test_query_job_stores_matches_on_the_job(listeners):
    a = seed_study(count=1, patient_id="QP", AccessionNumber="QA1")
    seed_study(count=1, patient_id="OTHER")
    job = _run("query", node="QRSCP", level="STUDY", filters={"PatientID": "QP"},
               keys=["StudyInstanceUID", "AccessionNumber", "NumberOfStudyRelatedInstances"])
    assert job.state == JobState.SUCCESS, job.errors
    assert job.result["count"] == 1
    match = job.result["matches"][0]
    assert match["0020000D"]["Value"] == [a["study"]]
    assert match["00080050"]["Value"] == ["QA1"]
    job = _run("query", node="QRSCP", level="SERIES", root="PATIENT",
               filters={"PatientID": "QP", "StudyInstanceUID": a["study"]}, keys=["SeriesInstanceUID"])
    assert job.result["count"] == 1


def test_query_job_reports_the_peer_failure(listeners):
    job = _run("query", node="QRSCP", level="STUDY", filters={"StudyDate": "2024-01"})
    assert job.state == JobState.RETRYING and "0xC000" in job.errors[-1]


@pytest.mark.parametrize("method", ["move", "get"])
def test_retrieve_job_from_a_live_qr_listener(listeners, method):
    study = seed_study(count=3)
    # Our own Storage listener is the C-MOVE destination, known to the Q/R listener as a node.
    node_add("STORESCP", listeners.port("storage"))
    job = _run("retrieve", node="QRSCP", level="STUDY", filters={"StudyInstanceUID": study["study"]},
               method=method)
    assert job.state == JobState.SUCCESS, job.errors
    assert (job.progress_done, job.progress_failed, job.progress_total) == (3, 0, 3)
    assert job.result["method"] == method and job.result["done"] == 3
    assert Instance.objects.filter(series__study__study_instance_uid=study["study"]).count() == 3


def test_retrieve_job_move_refused_without_destination(listeners):
    study = seed_study(count=1)
    job = _run("retrieve", node="QRSCP", level="STUDY", filters={"StudyInstanceUID": study["study"]})
    assert job.state == JobState.RETRYING and "0xA801" in job.errors[-1]

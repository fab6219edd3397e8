"""SCU jobs against a real Orthanc (Debian package) started by the test on ephemeral ports.

Orthanc knows our Storage AE as modality "pacs", so it can C-MOVE to us; data
sent to it is checked through its REST API.  It is a real remote peer: a
different implementation, a different archive.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import urllib.request

import numpy as np
import pytest
from pydicom import dcmread
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from pacs.choices import JobState
from pacs.models import Instance
from pacs.services.jobs import job_create, job_execute
from pacs.storage import absolute_path
from tests import dicom_factories as f
from tests.dimse.qr_support import free_port, node_add, seed_study
from tests.polling import eventually

pytestmark = pytest.mark.django_db(transaction=True)

ORTHANC = "/usr/sbin/Orthanc"


def _run(kind, **params):
    job = job_create(kind=kind, params=params, enqueue=False)
    return job_execute(job_id=job.pk)


def _echo(port: int) -> bool:
    ae = AE(ae_title="PROBE")
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title="ORTHANC")
    if not assoc.is_established:
        return False
    assoc.release()
    return True


class Orthanc:
    def __init__(self, work, storage_aet: str, storage_port: int) -> None:
        self.dicom_port, self.http_port = free_port(), free_port()
        config = {
            "Name": "peer", "StorageDirectory": str(work / "db"), "IndexDirectory": str(work / "db"),
            "DicomAet": "ORTHANC", "DicomPort": self.dicom_port, "HttpPort": self.http_port,
            "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "DicomCheckCalledAet": False,
            "DicomModalities": {"pacs": [storage_aet, "127.0.0.1", storage_port]}, "Plugins": [],
            "DicomAlwaysAllowEcho": True, "DicomAlwaysAllowStore": True,
        }
        path = work / "orthanc.json"
        path.write_text(json.dumps(config))
        self.process = subprocess.Popen([ORTHANC, str(path)], env={**os.environ, "TCP_NODELAY": "1"},
                                        stdout=subprocess.DEVNULL, stderr=open(work / "orthanc.log", "wb"))
        eventually(lambda: _echo(self.dicom_port), timeout=30, interval=0.2)

    def get(self, path: str):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=10) as rsp:
            return json.loads(rsp.read())

    def upload(self, data: bytes) -> None:
        request = urllib.request.Request(f"http://127.0.0.1:{self.http_port}/instances", data=data, method="POST")
        with urllib.request.urlopen(request, timeout=10) as rsp:
            assert rsp.status == 200

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)


@pytest.fixture
def orthanc(dimse_listener, tmp_path):
    manager = dimse_listener("storage")
    peer = Orthanc(tmp_path, "STORESCP", manager.port("storage"))
    node_add("ORTHANC", peer.dicom_port, is_query_source=True)
    yield peer
    peer.stop()


def test_verify_orthanc(orthanc):
    job = _run("verify", node="ORTHANC")
    assert job.state == JobState.SUCCESS and job.result["status"] == "0x0000"


def test_send_query_and_retrieve_round_trip_with_orthanc(orthanc):
    study = seed_study(count=3, transfer_syntax=f.JPEG_LS_LOSSLESS, patient_id="ORT1", AccessionNumber="ORTACC")
    job = _run("send", node="ORTHANC", study_instance_uids=[study["study"]])
    assert job.state == JobState.SUCCESS, job.errors
    assert (job.progress_done, job.progress_total) == (3, 3)
    assert len(orthanc.get("/instances")) == 3

    job = _run("query", node="ORTHANC", level="STUDY", filters={"PatientID": "ORT1"},
               keys=["StudyInstanceUID", "AccessionNumber", "NumberOfStudyRelatedInstances"])
    assert job.state == JobState.SUCCESS, job.errors
    assert job.result["count"] == 1
    assert job.result["matches"][0]["0020000D"]["Value"] == [study["study"]]
    job = _run("query", node="ORTHANC", level="IMAGE", filters={"StudyInstanceUID": study["study"]},
               keys=["SOPInstanceUID", "SeriesInstanceUID"])
    assert sorted(m["00080018"]["Value"][0] for m in job.result["matches"]) == sorted(study["sops"])


@pytest.mark.parametrize("method", ["move", "get"])
def test_retrieve_a_study_only_orthanc_has(orthanc, method):
    study_uid = None
    sops = []
    for i in range(3):
        ds = f.ct_dataset(study_uid=study_uid, series_uid=None if i == 0 else series_uid, instance_number=i + 1,
                          patient_id="ORT2")
        study_uid, series_uid = ds.StudyInstanceUID, ds.SeriesInstanceUID
        data = f.encode(ds, f.J2K_LOSSLESS)
        sops.append(dcmread(io.BytesIO(data)).SOPInstanceUID)
        orthanc.upload(data)
    assert not Instance.objects.exists()
    job = _run("retrieve", node="ORTHANC", level="STUDY", filters={"StudyInstanceUID": study_uid}, method=method)
    assert job.state == JobState.SUCCESS, job.errors
    assert (job.progress_done, job.progress_failed, job.progress_total) == (3, 0, 3)
    stored = eventually(lambda: Instance.objects.count() == 3 and list(Instance.objects.all()))
    assert sorted(i.sop_instance_uid for i in stored) == sorted(sops)
    for instance in stored:
        ds = dcmread(absolute_path(instance.file_path))
        assert np.array_equal(ds.pixel_array, f.ct_dataset(instance_number=ds.InstanceNumber).pixel_array)


def test_orthanc_can_move_from_our_qr_listener(dimse_listener, tmp_path):
    """Orthanc as the SCU: it C-MOVEs a study from our Q/R listener to itself."""
    manager = dimse_listener("qr")
    study = seed_study(count=2, transfer_syntax=f.RLE)
    peer = Orthanc(tmp_path, "QRSCP", manager.port("qr"))
    try:
        node_add("ORTHANC", peer.dicom_port)
        body = json.dumps({"Level": "Study", "Resources": [{"StudyInstanceUID": study["study"]}],
                           "TargetAet": "ORTHANC", "Synchronous": True}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{peer.http_port}/modalities/pacs/move", data=body,
                                         method="POST")
        with urllib.request.urlopen(request, timeout=60) as rsp:
            assert rsp.status == 200
        assert len(peer.get("/instances")) == 2
    finally:
        peer.stop()

"""C-MOVE and C-GET SCP on a live Q/R listener: DCMTK movescu/getscu, pynetdicom counts, transcoding."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (
    CTImageStorage,
    PatientRootQueryRetrieveInformationModelMove,
    SecondaryCaptureImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from pacs.models import Instance
from pacs.storage import absolute_path
from tests import dicom_factories as f
from tests.dimse.qr_support import dcmtk, free_port, node_add, receiver_start, seed_study
from tests.polling import eventually

pytestmark = pytest.mark.django_db(transaction=True)

LOSSLESS = [f.JPEG_LOSSLESS, f.JPEG_LOSSLESS_SV1, f.JPEG_LS_LOSSLESS, f.J2K_LOSSLESS, f.RLE]
LOSSY = [f.JPEG_BASELINE, f.JPEG_EXTENDED, f.JPEG_LS_NEAR, f.J2K]


@pytest.fixture
def qr(dimse_listener):
    return dimse_listener("qr").port("qr")


@pytest.fixture
def receiver(db):
    started = []

    def _start(ae_title="RECEIVER", transfer_syntaxes=None, register=True, **node_fields):
        rcv = receiver_start(ae_title, transfer_syntaxes)
        if register:
            node_add(ae_title, rcv.port, **node_fields)
        started.append(rcv)
        return rcv

    yield _start
    for rcv in started:
        rcv.stop()


def _identifier(level, **keys):
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for key, value in keys.items():
        setattr(ds, key, value)
    return ds


def _assoc(port, *contexts, ae_title="PYSCU", **kwargs):
    ae = AE(ae_title=ae_title)
    for cx in contexts:
        ae.add_requested_context(cx)
    assoc = ae.associate("127.0.0.1", port, ae_title="QRSCP", **kwargs)
    assert assoc.is_established
    return assoc


def _move(port, identifier, destination, model=StudyRootQueryRetrieveInformationModelMove):
    assoc = _assoc(port, model)
    try:
        return [(status, ds) for status, ds in assoc.send_c_move(identifier, destination, model)]
    finally:
        assoc.release()


def test_movescu_to_its_own_receiver(qr, storage_root, tmp_path):
    study = seed_study(count=3)
    seed_study(count=2)  # not moved
    port = free_port()
    node_add("MOVESCU", port)
    out = tmp_path / "out"
    out.mkdir()
    result = dcmtk("movescu", "-S", "-aet", "MOVESCU", "-aec", "QRSCP", "-aem", "MOVESCU", "+P", port, "-od", out,
                   "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study['study']}", "127.0.0.1", qr)
    assert result.returncode == 0, result.stderr
    received = sorted(dcmread(p).SOPInstanceUID for p in out.iterdir())
    assert received == sorted(study["sops"])


def test_movescu_patient_root_patient_level_to_a_second_listener(qr, storage_root, receiver):
    a = seed_study(count=2, patient_id="PX")
    b = seed_study(count=1, patient_id="PX")
    seed_study(count=1, patient_id="OTHER")
    rcv = receiver("SECOND")
    result = dcmtk("movescu", "-P", "-aet", "MOVESCU", "-aec", "QRSCP", "-aem", "SECOND",
                   "-k", "QueryRetrieveLevel=PATIENT", "-k", "PatientID=PX", "127.0.0.1", qr)
    assert result.returncode == 0, result.stderr
    assert rcv.sop_uids() == sorted(a["sops"] + b["sops"])


def test_move_pending_counts_then_success(qr, storage_root, receiver):
    study = seed_study(count=4)
    receiver("RECEIVER")
    responses = _move(qr, _identifier("STUDY", StudyInstanceUID=study["study"]), "RECEIVER")
    pendings = [s for s, _ in responses if s.Status == 0xFF00]
    assert [s.NumberOfRemainingSuboperations for s in pendings] == [3, 2, 1, 0]
    assert [s.NumberOfCompletedSuboperations for s in pendings] == [1, 2, 3, 4]
    final = responses[-1][0]
    assert (final.Status, final.NumberOfCompletedSuboperations, final.NumberOfFailedSuboperations,
            final.NumberOfWarningSuboperations) == (0x0000, 4, 0, 0)


@pytest.mark.parametrize("level, key", [("SERIES", "SeriesInstanceUID"), ("IMAGE", "SOPInstanceUID")])
def test_move_series_and_image_levels(qr, storage_root, receiver, level, key):
    study = seed_study(count=2, series=2)
    rcv = receiver("RECEIVER")
    value = study["series"][1] if level == "SERIES" else study["sops"][0]
    identifier = _identifier(level, StudyInstanceUID=study["study"], **{key: value})
    if level == "IMAGE":
        identifier.SeriesInstanceUID = study["series"][0]
    final = _move(qr, identifier, "RECEIVER")[-1][0]
    assert final.Status == 0x0000
    expected = study["sops"][2:] if level == "SERIES" else study["sops"][:1]
    assert rcv.sop_uids() == sorted(expected)


def test_move_to_unknown_or_disabled_destination_is_a801(qr, storage_root, receiver):
    study = seed_study(count=1)
    receiver("NOTMOVE", is_move_destination=False)
    receiver("DISABLED", enabled=False)
    for destination in ("NOBODY", "NOTMOVE", "DISABLED"):
        final = _move(qr, _identifier("STUDY", StudyInstanceUID=study["study"]), destination)[-1][0]
        assert final.Status == 0xA801, destination


@pytest.mark.parametrize(
    "identifier, status, comment",
    [
        (_identifier("STUDY", StudyInstanceUID=""), 0xA900, "needs StudyInstanceUID"),
        (_identifier("STUDY", StudyInstanceUID="*"), 0xA900, "needs StudyInstanceUID"),
        (_identifier("STUDY", StudyInstanceUID="1.2.3", SOPInstanceUID="1.2"), 0xA900, "not allowed"),
        (_identifier("STUDY", StudyInstanceUID="1.2.x"), 0xC000, "not a valid UID"),
        (_identifier("SLICE", StudyInstanceUID="1.2.3"), 0xA900, "QueryRetrieveLevel"),
    ],
)
def test_bad_move_identifiers_fail_with_comment(qr, storage_root, receiver, identifier, status, comment):
    seed_study(count=1)
    rcv = receiver("RECEIVER")
    final = _move(qr, identifier, "RECEIVER")[-1][0]
    assert final.Status == status and comment in final.ErrorComment
    assert rcv.datasets == []


def test_destination_refusing_every_store_gives_failed_counts(qr, storage_root, receiver):
    study = seed_study(count=3)
    rcv = receiver("RECEIVER")
    rcv.status = 0xA700
    responses = _move(qr, _identifier("STUDY", StudyInstanceUID=study["study"]), "RECEIVER")
    final, identifier = responses[-1]
    assert (final.Status, final.NumberOfFailedSuboperations, final.NumberOfCompletedSuboperations) == (
        0xA702, 3, 0)
    assert sorted(identifier.FailedSOPInstanceUIDList) == sorted(study["sops"])


def test_destination_disappearing_mid_move_counts_the_rest_failed(qr, storage_root, receiver):
    study = seed_study(count=5)
    rcv = receiver("RECEIVER")
    original = rcv.handle_store

    def abort_after_two(event):
        status = original(event)
        if len(rcv.datasets) == 2:
            event.assoc.abort()
        return status

    rcv.server.unbind(evt.EVT_C_STORE, original)
    rcv.server.bind(evt.EVT_C_STORE, abort_after_two)
    responses = _move(qr, _identifier("STUDY", StudyInstanceUID=study["study"]), "RECEIVER")
    final = responses[-1][0]
    assert final.Status in (0xB000, 0xA702)
    assert final.NumberOfCompletedSuboperations + final.NumberOfFailedSuboperations == 5
    assert final.NumberOfFailedSuboperations >= 3
    # The listener is still serving.
    assoc = _assoc(qr, StudyRootQueryRetrieveInformationModelFind)
    statuses = [s.Status for s, _ in assoc.send_c_find(_identifier("STUDY", StudyInstanceUID=study["study"]),
                                                       StudyRootQueryRetrieveInformationModelFind)]
    assoc.release()
    assert statuses == [0xFF00, 0x0000]


def test_missing_file_is_a_failed_suboperation(qr, storage_root, receiver):
    study = seed_study(count=3)
    lost = Instance.objects.get(sop_instance_uid=study["sops"][1])
    absolute_path(lost.file_path).unlink()
    rcv = receiver("RECEIVER")
    final, identifier = _move(qr, _identifier("STUDY", StudyInstanceUID=study["study"]), "RECEIVER")[-1]
    assert (final.Status, final.NumberOfCompletedSuboperations, final.NumberOfFailedSuboperations) == (
        0xB000, 2, 1)
    assert identifier.FailedSOPInstanceUIDList == study["sops"][1]
    assert len(rcv.datasets) == 2


def test_concurrent_moves_to_the_same_destination(qr, storage_root, receiver):
    studies = [seed_study(count=3) for _ in range(3)]
    rcv = receiver("RECEIVER")
    finals = {}

    def run(study):
        finals[study["study"]] = _move(qr, _identifier("STUDY", StudyInstanceUID=study["study"]), "RECEIVER")[-1][0]

    threads = [threading.Thread(target=run, args=(s,)) for s in studies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert all(final.Status == 0 and final.NumberOfCompletedSuboperations == 3 for final in finals.values())
    assert rcv.sop_uids() == sorted(uid for s in studies for uid in s["sops"])


@pytest.mark.parametrize("transfer_syntax", LOSSLESS + LOSSY)
def test_move_transcodes_for_an_uncompressed_only_receiver(qr, storage_root, receiver, transfer_syntax):
    study = seed_study(count=2, transfer_syntax=transfer_syntax)
    rcv = receiver("RECEIVER", [f.EXPLICIT_LE])
    final = _move(qr, _identifier("STUDY", StudyInstanceUID=study["study"]), "RECEIVER")[-1][0]
    assert final.Status == 0x0000, transfer_syntax
    assert set(rcv.transfer_syntaxes) == {f.EXPLICIT_LE}
    for ds in rcv.datasets:
        stored = Instance.objects.get(sop_instance_uid=ds.SOPInstanceUID)
        expected = dcmread(absolute_path(stored.file_path)).pixel_array
        if transfer_syntax in LOSSLESS:
            assert np.array_equal(expected, f.ct_dataset(instance_number=stored.instance_number).pixel_array)
        assert np.array_equal(ds.pixel_array, expected)


def test_move_sends_as_stored_when_accepted(qr, storage_root, receiver):
    study = seed_study(count=1, transfer_syntax=f.J2K_LOSSLESS)
    rcv = receiver("RECEIVER", [f.EXPLICIT_LE, f.J2K_LOSSLESS])
    _move(qr, _identifier("STUDY", StudyInstanceUID=study["study"]), "RECEIVER")
    assert rcv.transfer_syntaxes == [f.J2K_LOSSLESS]
    stored = absolute_path(Instance.objects.get().file_path).read_bytes()
    assert dcmread(io.BytesIO(stored)).PixelData == rcv.datasets[0].PixelData


def test_move_uses_the_node_preferred_syntax(qr, storage_root, receiver):
    study = seed_study(count=1)
    rcv = receiver("RECEIVER", [f.EXPLICIT_LE, f.IMPLICIT_LE, f.RLE], preferred_transfer_syntax=f.RLE)
    _move(qr, _identifier("STUDY", StudyInstanceUID=study["study"]), "RECEIVER")
    assert rcv.transfer_syntaxes == [f.RLE]
    assert np.array_equal(rcv.datasets[0].pixel_array, f.ct_dataset().pixel_array)


def test_video_cannot_be_moved_to_an_uncompressed_receiver(qr, storage_root, receiver):
    study = seed_study(count=1, transfer_syntax=f.MPEG2)
    receiver("RECEIVER", [f.EXPLICIT_LE])
    final = _move(qr, _identifier("STUDY", StudyInstanceUID=study["study"]), "RECEIVER")[-1][0]
    assert (final.Status, final.NumberOfFailedSuboperations) == (0xA702, 1)


# --- C-GET --------------------------------------------------------------------------------


def test_getscu_study_level_with_compressed_archive(qr, storage_root, tmp_path):
    study = seed_study(count=2, transfer_syntax=f.JPEG_LS_LOSSLESS)
    out = tmp_path / "get"
    out.mkdir()
    result = dcmtk("getscu", "-S", "-aet", "GETSCU", "-aec", "QRSCP", "-od", out, "-k", "QueryRetrieveLevel=STUDY",
                   "-k", f"StudyInstanceUID={study['study']}", "127.0.0.1", qr)
    assert result.returncode == 0, result.stderr
    files = [dcmread(p) for p in out.iterdir()]
    assert sorted(ds.SOPInstanceUID for ds in files) == sorted(study["sops"])
    for ds in files:
        assert ds.file_meta.TransferSyntaxUID in (f.EXPLICIT_LE, f.IMPLICIT_LE)
        assert np.array_equal(ds.pixel_array, f.ct_dataset(instance_number=ds.InstanceNumber).pixel_array)


@pytest.mark.parametrize("level", ["SERIES", "IMAGE"])
def test_getscu_patient_root_lower_levels(qr, storage_root, tmp_path, level):
    study = seed_study(count=2, series=2, patient_id="PG")
    out = tmp_path / "get"
    out.mkdir()
    keys = ["-k", f"QueryRetrieveLevel={level}", "-k", "PatientID=PG", "-k", f"StudyInstanceUID={study['study']}",
            "-k", f"SeriesInstanceUID={study['series'][0]}"]
    if level == "IMAGE":
        keys += ["-k", f"SOPInstanceUID={study['sops'][1]}"]
    result = dcmtk("getscu", "-P", "-aet", "GETSCU", "-aec", "QRSCP", "-od", out, *keys, "127.0.0.1", qr)
    assert result.returncode == 0, result.stderr
    expected = study["sops"][:2] if level == "SERIES" else [study["sops"][1]]
    assert sorted(dcmread(p).SOPInstanceUID for p in out.iterdir()) == sorted(expected)


def _get_assoc(port, received, transfer_syntaxes=None):
    ae = AE(ae_title="PYGET")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    for sop_class in (CTImageStorage, SecondaryCaptureImageStorage):
        ae.add_requested_context(sop_class, transfer_syntaxes or [f.EXPLICIT_LE])

    def store(event):
        ds = event.dataset
        ds.file_meta = event.file_meta
        received.append(ds)
        return 0x0000

    roles = [build_role(CTImageStorage, scp_role=True), build_role(SecondaryCaptureImageStorage, scp_role=True)]
    assoc = ae.associate("127.0.0.1", port, ae_title="QRSCP", ext_neg=roles,
                         evt_handlers=[(evt.EVT_C_STORE, store)])
    assert assoc.is_established
    return assoc


def test_get_pending_counts_and_transcoding(qr, storage_root):
    study = seed_study(count=3, transfer_syntax=f.J2K_LOSSLESS)
    received = []
    assoc = _get_assoc(qr, received)
    responses = list(assoc.send_c_get(_identifier("STUDY", StudyInstanceUID=study["study"]),
                                      StudyRootQueryRetrieveInformationModelGet))
    assoc.release()
    statuses = [s for s, _ in responses]
    assert [s.NumberOfRemainingSuboperations for s in statuses[:-1]] == [2, 1, 0]
    assert (statuses[-1].Status, statuses[-1].NumberOfCompletedSuboperations) == (0x0000, 3)
    assert sorted(ds.SOPInstanceUID for ds in received) == sorted(study["sops"])
    for ds in received:
        assert np.array_equal(ds.pixel_array, f.ct_dataset(instance_number=ds.InstanceNumber).pixel_array)


def test_get_without_a_storage_context_fails_the_suboperations(qr, storage_root):
    study = seed_study(count=2, modality="CT")
    received = []
    ae = AE(ae_title="PYGET")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    assoc = ae.associate("127.0.0.1", qr, ae_title="QRSCP")
    final, identifier = list(assoc.send_c_get(_identifier("STUDY", StudyInstanceUID=study["study"]),
                                              StudyRootQueryRetrieveInformationModelGet))[-1]
    assoc.release()
    assert (final.Status, final.NumberOfFailedSuboperations) == (0xA702, 2)
    assert sorted(identifier.FailedSOPInstanceUIDList) == sorted(study["sops"])
    assert received == []


def test_get_cancel_ends_with_fe00_and_counts(qr, storage_root):
    study = seed_study(count=30)
    received = []
    assoc = _get_assoc(qr, received)
    statuses = []
    for status, _ in assoc.send_c_get(_identifier("STUDY", StudyInstanceUID=study["study"]),
                                      StudyRootQueryRetrieveInformationModelGet, msg_id=9):
        statuses.append(status)
        if len(statuses) == 1:
            assoc.send_c_cancel(9, query_model=StudyRootQueryRetrieveInformationModelGet)
    assoc.release()
    final = statuses[-1]
    assert final.Status == 0xFE00
    assert final.NumberOfCompletedSuboperations + final.NumberOfRemainingSuboperations == 30
    assert final.NumberOfRemainingSuboperations > 0


def test_bad_get_identifier_fails_with_comment(qr, storage_root):
    received = []
    assoc = _get_assoc(qr, received)
    final = list(assoc.send_c_get(_identifier("SERIES", StudyInstanceUID="1.2.3"),
                                  StudyRootQueryRetrieveInformationModelGet))[-1][0]
    assoc.release()
    assert final.Status == 0xA900 and "SeriesInstanceUID" in final.ErrorComment


def test_patient_root_move_is_served(qr, storage_root, receiver):
    study = seed_study(count=1, patient_id="PM")
    rcv = receiver("RECEIVER")
    final = _move(qr, _identifier("PATIENT", PatientID="PM"), "RECEIVER",
                  model=PatientRootQueryRetrieveInformationModelMove)[-1][0]
    assert final.Status == 0x0000
    eventually(lambda: rcv.sop_uids() == study["sops"])

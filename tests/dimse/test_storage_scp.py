"""Storage SCP on a live listener: DCMTK storescu and pynetdicom SCUs."""

from __future__ import annotations

import os
import socket
import subprocess
import threading

import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, Verification

from dimse.models import AllowedCaller, AssociationLog, Listener
from pacs.models import Instance, Study
from tests import dicom_factories as f
from tests.polling import eventually

pytestmark = pytest.mark.django_db(transaction=True)

DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}
# storescu flags proposing exactly one transfer syntax (DCMTK 3.6.7); None: via a -xf profile
STORESCU_FLAG = {
    f.IMPLICIT_LE: "-xi", f.EXPLICIT_LE: "-xe", f.EXPLICIT_BE: "-xb", f.DEFLATED: "-xd",
    f.JPEG_BASELINE: "-xy", f.JPEG_EXTENDED: "-xx", f.JPEG_LOSSLESS: None, f.JPEG_LOSSLESS_SV1: "-xs",
    f.JPEG_LS_LOSSLESS: "-xt", f.JPEG_LS_NEAR: "-xu", f.J2K_LOSSLESS: "-xv", f.J2K: "-xw", f.RLE: "-xr",
    f.MPEG2: "-xm", f.MPEG4: "-xn", f.HEVC: "-x4",
}
# DCMTK 3.6.7 cannot send HTJ2K (it refuses the syntax locally): pynetdicom covers it below.


def storescu_ts_args(transfer_syntax: str, folder) -> list[str]:
    """storescu arguments proposing CT Image Storage with only *transfer_syntax*."""
    flag = STORESCU_FLAG[transfer_syntax]
    if flag:
        return [flag]
    config = folder / "storescu.cfg"
    config.write_text(
        "[[TransferSyntaxes]]\n[OnlyTS]\nTransferSyntax1 = " + transfer_syntax + "\n"
        "[[PresentationContexts]]\n[OnlyCtx]\nPresentationContext1 = CTImageStorage\\OnlyTS\n"
        "[[Profiles]]\n[Only]\nPresentationContexts = OnlyCtx\n"
    )
    return ["-xf", str(config), "Only"]


def storescu(port: int, *paths, args=(), calling="MODALITY", called="STORESCP", timeout=120):
    cmd = ["storescu", "-aet", calling, "-aec", called, *args, "127.0.0.1", str(port), *map(str, paths)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=DCMTK_ENV)


def _scu(port, calling="PYSCU", called="STORESCP", ts=None):
    ae = AE(ae_title=calling)
    ae.add_requested_context(CTImageStorage, ts or [f.EXPLICIT_LE])
    ae.add_requested_context(Verification)
    return ae.associate("127.0.0.1", port, ae_title=called)


def test_storescu_folder_is_archived_and_association_recorded(dimse_listener, tmp_path, storage_root):
    port = dimse_listener("storage").port("storage")
    files = f.study_files(tmp_path / "in", count=5)
    result = storescu(port, tmp_path / "in", args=["+sd", "+r"])
    assert result.returncode == 0, result.stderr
    assert Instance.objects.count() == 5
    study = Study.objects.get()
    assert study.number_of_study_related_instances == 5
    for path in files:
        sop_uid = dcmread(path, stop_before_pixels=True).SOPInstanceUID
        assert (storage_root / Instance.objects.get(sop_instance_uid=sop_uid).file_path).exists()
    log = eventually(lambda: AssociationLog.objects.filter(status="released").first())
    assert (log.calling_aet, log.called_aet, log.status, log.instances_received) == ("MODALITY", "STORESCP",
                                                                                     "released", 5)
    assert log.peer_address == "127.0.0.1" and log.ended_at is not None


@pytest.mark.parametrize("transfer_syntax", list(STORESCU_FLAG))
def test_storescu_each_transfer_syntax_is_accepted_and_kept(dimse_listener, tmp_path, storage_root,
                                                            transfer_syntax):
    port = dimse_listener("storage").port("storage")
    path = f.write(f.ct_dataset(), tmp_path / "one.dcm", transfer_syntax)
    result = storescu(port, path, args=storescu_ts_args(transfer_syntax, tmp_path))
    assert result.returncode == 0, result.stderr
    instance = Instance.objects.get()
    assert instance.transfer_syntax_uid == transfer_syntax
    if transfer_syntax != f.DEFLATED:  # storescu re-deflates with its own settings
        assert (storage_root / instance.file_path).read_bytes()[132:].endswith(path.read_bytes()[-200:])


def test_pynetdicom_htj2k_and_echo(dimse_listener):
    port = dimse_listener("storage").port("storage")
    ds = dcmread(__import__("io").BytesIO(f.encode(f.ct_dataset(), f.HTJ2K_LOSSLESS)))
    assoc = _scu(port, ts=[f.HTJ2K_LOSSLESS])
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0
    assert assoc.send_c_store(ds).Status == 0
    assoc.release()
    assert Instance.objects.get().transfer_syntax_uid == f.HTJ2K_LOSSLESS


def test_failure_statuses_reach_the_sender_and_next_store_works(dimse_listener, archive_config):
    port = dimse_listener("storage").port("storage")
    assoc = _scu(port)
    assert assoc.is_established
    no_series = f.ct_dataset()
    del no_series.SeriesInstanceUID
    rsp = assoc.send_c_store(no_series)
    assert rsp.Status == 0xA900 and "SeriesInstanceUID" in rsp.ErrorComment
    archive_config(min_free_mb=10**9)
    assert assoc.send_c_store(f.ct_dataset()).Status == 0xA700
    archive_config(min_free_mb=1)
    assert assoc.send_c_store(f.ct_dataset()).Status == 0x0000
    assoc.release()
    log = eventually(lambda: AssociationLog.objects.filter(status="released").first())
    assert (log.instances_received, log.failures) == (1, 2)


def test_duplicate_policy_reject_answers_0111(dimse_listener, archive_config):
    archive_config(duplicate_policy="reject")
    port = dimse_listener("storage").port("storage")
    ds = f.ct_dataset()
    assoc = _scu(port)
    assert assoc.send_c_store(ds).Status == 0
    assert assoc.send_c_store(ds).Status == 0x0111
    assoc.release()
    assert Instance.objects.count() == 1


def test_called_ae_mismatch_is_rejected(dimse_listener):
    port = dimse_listener("storage").port("storage")
    assoc = _scu(port, called="WRONGAE")
    assert assoc.is_rejected
    log = eventually(lambda: AssociationLog.objects.first())
    assert log.status == "rejected" and log.called_aet == "WRONGAE"


def test_calling_ae_allow_list_with_host_binding(dimse_listener):
    AllowedCaller.objects.create(ae_title="GOODAE", host="127.0.0.1")
    AllowedCaller.objects.create(ae_title="FARAE", host="10.99.99.99")
    port = dimse_listener("storage", restrict_callers=True).port("storage")
    good = _scu(port, calling="GOODAE")
    assert good.is_established
    good.release()
    for calling in ("EVILAE", "FARAE"):
        bad = _scu(port, calling=calling)
        assert bad.is_rejected
    eventually(lambda: AssociationLog.objects.filter(status="rejected").count() == 2)


def test_maximum_associations(dimse_listener):
    port = dimse_listener("storage", max_associations=1).port("storage")
    first = _scu(port)
    assert first.is_established
    second = _scu(port)
    assert second.is_rejected
    first.release()


def test_eight_parallel_associations(dimse_listener, tmp_path):
    port = dimse_listener("storage").port("storage")
    folders = []
    for i in range(8):
        f.study_files(tmp_path / f"s{i}", count=6)
        folders.append(tmp_path / f"s{i}")
    results = []

    def run(folder):
        results.append(storescu(port, folder, args=["+sd"]))

    threads = [threading.Thread(target=run, args=(folder,)) for folder in folders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    assert Instance.objects.count() == 48 and Study.objects.count() == 8
    assert all(s.number_of_study_related_instances == 6 for s in Study.objects.all())


def test_dropped_association_leaves_nothing_partial_and_listener_survives(dimse_listener, storage_root):
    port = dimse_listener("storage").port("storage")
    assoc = _scu(port)
    assert assoc.send_c_store(f.ct_dataset()).Status == 0
    assoc.abort()
    # Raw garbage and a half-sent association request on the port.
    for payload in (os.urandom(2000), b"\x01\x00\x00\x00\x10\x00"):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(payload)
    assoc = _scu(port)
    assert assoc.is_established
    assert assoc.send_c_store(f.ct_dataset()).Status == 0
    assoc.release()
    assert Instance.objects.count() == 2
    assert not list((storage_root / ".tmp").glob("*"))
    eventually(lambda: AssociationLog.objects.filter(status="aborted").count() == 1)


def test_listener_restart_rereads_configuration(dimse_listener):
    manager = dimse_listener("storage")
    Listener.objects.filter(service="storage").update(ae_title="NEWAE")
    manager.restart("storage")
    port = manager.port("storage")
    assert _scu(port, called="STORESCP").is_rejected
    assoc = _scu(port, called="NEWAE")
    assert assoc.is_established
    assoc.release()


def test_stop_and_start(dimse_listener):
    manager = dimse_listener("storage")
    port = manager.port("storage")
    manager.stop("storage")
    assert not manager.status()["storage"]["running"]
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    manager.start("storage")
    assoc = _scu(manager.port("storage"))
    assert assoc.is_established
    assoc.release()


def test_busy_port_gives_a_clear_error(dimse_listener):
    from dimse.server import ListenerManager

    port = dimse_listener("storage").port("storage")
    other = ListenerManager(bind_address="127.0.0.1", port_overrides={"storage": port}, services=["storage"])
    status = other.start()
    assert not status["storage"]["running"]
    assert f"port {port} is already in use" in status["storage"]["error"]


def test_same_study_from_many_threads_keeps_counts(dimse_listener):
    port = dimse_listener("storage").port("storage")
    study_uid, series_uid = generate_uid(), generate_uid()

    def send(start):
        assoc = _scu(port)
        for i in range(start, start + 5):
            assert assoc.send_c_store(f.ct_dataset(study_uid=study_uid, series_uid=series_uid,
                                                   instance_number=i)).Status == 0
        assoc.release()

    threads = [threading.Thread(target=send, args=(i * 5,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    study = Study.objects.get()
    assert study.number_of_study_related_instances == 20 and study.number_of_study_related_series == 1


def test_released_associations_are_audited_as_released(dimse_listener):
    """The peer hangs up right after A-RELEASE-RP: still a release, never an abort (pynetdicom and DCMTK)."""
    port = dimse_listener("storage").port("storage")
    ae = AE(ae_title="ECHOER")
    ae.add_requested_context("1.2.840.10008.1.1")
    for _ in range(10):
        assoc = ae.associate("127.0.0.1", port, ae_title="STORESCP")
        assert assoc.send_c_echo().Status == 0
        assoc.release()
        result = subprocess.run(["echoscu", "-aet", "ECHOER", "-aec", "STORESCP", "127.0.0.1", str(port)],
                                env=DCMTK_ENV, capture_output=True, timeout=60)
        assert result.returncode == 0, result.stderr
    eventually(lambda: AssociationLog.objects.filter(calling_aet="ECHOER").count() == 20
               and not AssociationLog.objects.filter(status="established").exists())
    assert set(AssociationLog.objects.filter(calling_aet="ECHOER").values_list("status", flat=True)) == {"released"}


def test_archived_file_is_pynetdicoms_part10_encoding_of_the_received_bytes(dimse_listener, storage_root):
    """The file meta is built without pydicom; the bytes are what pynetdicom's encoded_dataset() gives."""
    from pynetdicom.dsutils import create_file_meta, encode, encode_file_meta

    port = dimse_listener("storage").port("storage")
    ds = f.ct_dataset()
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(ds.SOPClassUID, f.EXPLICIT_LE)
    assoc = ae.associate("127.0.0.1", port, ae_title="STORESCP")
    assert assoc.send_c_store(ds).Status == 0
    assoc.release()
    meta = create_file_meta(sop_class_uid=ds.SOPClassUID, sop_instance_uid=ds.SOPInstanceUID,
                            transfer_syntax=f.EXPLICIT_LE)
    expected = b"\0" * 128 + b"DICM" + encode_file_meta(meta) + encode(ds, False, True)
    assert (storage_root / Instance.objects.get().file_path).read_bytes() == expected

"""The storage listener's fast C-STORE path (dimse.handlers.storage_wire) on a live listener.

The other storage tests (DCMTK storescu, every transfer syntax, failures,
parallel associations, dropped associations) all run through this path too;
these pin what it must keep of pynetdicom's behaviour: the response fields,
hand-over of everything it does not serve, and aborting on broken framing.
"""

from __future__ import annotations

import struct

import pytest
from pynetdicom import AE, evt
from pynetdicom.sop_class import CTImageStorage, Verification

from dimse.encoding import COMMAND_LAST, DATA, DATA_LAST, command_set, store_request_command
from pacs.models import Instance
from tests import dicom_factories as f
from tests.polling import eventually

pytestmark = pytest.mark.django_db(transaction=True)


def _associate(port: int, handlers=()):
    ae = AE(ae_title="WIRESCU")
    ae.add_requested_context(CTImageStorage, [f.EXPLICIT_LE])
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title="STORESCP", evt_handlers=list(handlers))
    assert assoc.is_established
    return assoc


def _context_id(assoc, abstract_syntax: str) -> int:
    return next(cx.context_id for cx in assoc.accepted_contexts if cx.abstract_syntax == abstract_syntax)


def _pdu(*pdvs: tuple[int, int, bytes]) -> bytes:
    """One P-DATA-TF PDU of ``(context ID, control header, data)`` PDVs (PS3.8 9.3.5)."""
    items = b"".join(struct.pack(">IBB", len(data) + 2, cx, control) + data for cx, control, data in pdvs)
    return struct.pack(">BxI", 0x04, len(items)) + items


def _dataset_bytes(ds) -> bytes:
    return f.encode(ds)[132 + 12 + struct.unpack_from("<I", f.encode(ds), 140)[0]:]


def test_response_answers_the_request_fields(dimse_listener):
    port = dimse_listener("storage").port("storage")
    received = []
    assoc = _associate(port, [(evt.EVT_DIMSE_RECV, lambda event: received.append(event.message.command_set))])
    ds = f.ct_dataset()
    assert assoc.send_c_store(ds, msg_id=4242).Status == 0x0000
    broken = f.ct_dataset()
    del broken.StudyInstanceUID
    failure = assoc.send_c_store(broken, msg_id=65535)
    assoc.release()
    ok, failed = received
    assert (ok.CommandField, ok.MessageIDBeingRespondedTo, ok.Status) == (0x8001, 4242, 0)
    assert (ok.AffectedSOPClassUID, ok.AffectedSOPInstanceUID) == (CTImageStorage, ds.SOPInstanceUID)
    assert ok.CommandDataSetType == 0x0101 and "ErrorComment" not in ok
    assert (failed.MessageIDBeingRespondedTo, failed.Status) == (65535, 0xA900)
    assert failed.AffectedSOPInstanceUID == broken.SOPInstanceUID
    assert "StudyInstanceUID" in failed.ErrorComment == failure.ErrorComment
    assert list(Instance.objects.values_list("sop_instance_uid", flat=True)) == [ds.SOPInstanceUID]


@pytest.mark.parametrize("setting, value", [("PACS_MAX_PDU", 64), ("PACS_STORE_WIRE", False)])
def test_messages_the_fast_path_declines_are_stored_by_pynetdicom(dimse_listener, settings, setting, value):
    # A 64-byte maximum PDU makes the sender cut the command set into several PDVs.
    setattr(settings, setting, value)
    port = dimse_listener("storage").port("storage")
    assoc = _associate(port)
    datasets = [f.ct_dataset(instance_number=i) for i in range(3)]
    assert [assoc.send_c_store(ds).Status for ds in datasets] == [0, 0, 0]
    assert assoc.send_c_echo().Status == 0
    assoc.release()
    assert Instance.objects.count() == 3


def test_messages_after_a_store_in_the_same_pdu_go_to_pynetdicom(dimse_listener):
    port = dimse_listener("storage").port("storage")
    received = []
    assoc = _associate(port, [(evt.EVT_DIMSE_RECV, lambda event: received.append(event.message.command_set))])
    ct, echo = _context_id(assoc, CTImageStorage), _context_id(assoc, Verification)
    ds = f.ct_dataset()
    data = _dataset_bytes(ds)
    store = store_request_command(CTImageStorage, ds.SOPInstanceUID, msg_id=11)
    echo_rq = command_set({"AffectedSOPClassUID": Verification, "CommandField": 0x0030, "MessageID": 12,
                           "CommandDataSetType": 0x0101})
    half = len(data) // 2
    # The data set in two PDUs; the second also carries a C-ECHO request after the last fragment.
    assoc.dul.socket.socket.sendall(
        _pdu((ct, COMMAND_LAST, store), (ct, DATA, data[:half]))
        + _pdu((ct, DATA_LAST, data[half:]), (echo, COMMAND_LAST, echo_rq))
    )
    eventually(lambda: len(received) == 2)
    assoc.release()
    assert [(r.CommandField, r.MessageIDBeingRespondedTo, r.Status) for r in received] == [
        (0x8001, 11, 0), (0x8030, 12, 0)
    ]
    assert Instance.objects.get().sop_instance_uid == ds.SOPInstanceUID


def test_broken_framing_inside_a_data_set_aborts_and_stores_nothing(dimse_listener, storage_root):
    port = dimse_listener("storage").port("storage")
    assoc = _associate(port)
    ct, echo = _context_id(assoc, CTImageStorage), _context_id(assoc, Verification)
    ds = f.ct_dataset()
    data = _dataset_bytes(ds)
    store = store_request_command(CTImageStorage, ds.SOPInstanceUID, msg_id=1)
    # A data set fragment on another presentation context than its command's.
    assoc.dul.socket.socket.sendall(_pdu((ct, COMMAND_LAST, store), (ct, DATA, data[:100]))
                                    + _pdu((echo, DATA_LAST, data[100:])))
    eventually(lambda: assoc.is_aborted)
    assert Instance.objects.count() == 0
    # The listener goes on serving the next association.
    again = _associate(port)
    assert again.send_c_store(f.ct_dataset()).Status == 0
    again.release()
    assert Instance.objects.count() == 1
    assert not list((storage_root / ".tmp").glob("*"))


def test_first_instance_waits_for_the_association_set_up(dimse_listener, monkeypatch, tmp_path):
    """The calling AE's charset override is looked up when the association is established (in
    pynetdicom's reactor thread); the fast path serves requests in the DUL thread and must not
    archive the first instance before that lookup is done."""
    import subprocess
    import threading

    from dimse import selectors
    from dimse.handlers.storage_wire import StorageWire
    from dimse.models import RemoteNode
    from pacs.models import Patient
    from tests.pacs.test_charsets import _with_raw

    RemoteNode.objects.create(ae_title="OLDCT", host="127.0.0.1", port=104, charset_override="GBK")
    lookup, begin = selectors.node_charset_override, StorageWire._begin
    store_arrived = threading.Event()

    def begin_and_signal(self, item) -> bool:
        started = begin(self, item)
        if started:
            store_arrived.set()
        return started

    def late_lookup(calling_aet: str) -> str:
        # The lookup answers only once the C-STORE request is in the fast path's hands.
        assert store_arrived.wait(30), "the C-STORE request never reached the fast path"
        return lookup(calling_aet)

    monkeypatch.setattr(StorageWire, "_begin", begin_and_signal)
    monkeypatch.setattr(selectors, "node_charset_override", late_lookup)
    port = dimse_listener("storage").port("storage")
    path = tmp_path / "gbk.dcm"
    path.write_bytes(_with_raw("ISO_IR 126", "赵^六".encode("gbk")))  # declared Greek, really GBK
    result = subprocess.run(["storescu", "-aet", "OLDCT", "-aec", "STORESCP", "127.0.0.1", str(port), str(path)],
                            capture_output=True, text=True, timeout=60, check=False,
                            env={"TCP_NODELAY": "1", "PATH": "/usr/bin"})
    assert result.returncode == 0, result.stderr
    assert Patient.objects.get().patient_name == "赵^六"


def test_a_data_set_past_the_spill_size_goes_through_a_temp_file(dimse_listener, settings, storage_root):
    import hashlib

    settings.PACS_STORE_SPILL_MB = 0.5
    port = dimse_listener("storage").port("storage")
    assoc = _associate(port)
    big = f.ct_dataset(size=768)  # ~1.2 MB of pixel data: spilled after the first 0.5 MB
    small = f.ct_dataset()
    assert assoc.send_c_store(big).Status == 0
    assert assoc.send_c_store(big).Status == 0  # keep-first duplicate: its temp file is removed
    assert assoc.send_c_store(small).Status == 0
    assoc.release()
    stored = Instance.objects.get(sop_instance_uid=big.SOPInstanceUID)
    data = (storage_root / stored.file_path).read_bytes()
    assert stored.checksum == hashlib.sha256(data).hexdigest() and stored.file_size == len(data)
    assert data.endswith(big.PixelData) and data[128:132] == b"DICM"
    assert Instance.objects.count() == 2
    assert not list((storage_root / ".tmp").glob("*"))


def test_an_association_dropped_while_spilling_leaves_no_temp_file(dimse_listener, settings, storage_root):
    settings.PACS_STORE_SPILL_MB = 0.5
    port = dimse_listener("storage").port("storage")
    assoc = _associate(port)
    ct = _context_id(assoc, CTImageStorage)
    ds = f.ct_dataset(size=768)
    data = _dataset_bytes(ds)
    store = store_request_command(CTImageStorage, ds.SOPInstanceUID, msg_id=1)
    # The command and 1 MB of the data set, never its last fragment.
    assoc.dul.socket.socket.sendall(_pdu((ct, COMMAND_LAST, store), (ct, DATA, data[:1_000_000])))
    eventually(lambda: list((storage_root / ".tmp").glob("*")))  # spilling
    assoc.abort()
    eventually(lambda: not list((storage_root / ".tmp").glob("*")))
    assert Instance.objects.count() == 0


def test_a_full_disk_while_spilling_answers_a700_and_the_association_goes_on(dimse_listener, settings,
                                                                              storage_root, monkeypatch):
    import errno

    from pacs import storage

    settings.PACS_STORE_SPILL_MB = 0.5
    port = dimse_listener("storage").port("storage")
    write = storage.Spool.write
    calls = []

    def write_until_full(self, data):
        calls.append(len(data))
        if len(calls) > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        write(self, data)

    monkeypatch.setattr(storage.Spool, "write", write_until_full)
    assoc = _associate(port)
    failed = assoc.send_c_store(f.ct_dataset(size=1024))  # 2 MB: several spool writes
    monkeypatch.setattr(storage.Spool, "write", write)
    after = assoc.send_c_store(f.ct_dataset())
    assoc.release()
    assert failed.Status == 0xA700 and "No space left" in failed.ErrorComment
    assert after.Status == 0
    assert Instance.objects.count() == 1
    assert not list((storage_root / ".tmp").glob("*"))


def test_the_free_space_floor_is_checked_before_spilling(dimse_listener, settings, storage_root, archive_config):
    settings.PACS_STORE_SPILL_MB = 0.5
    port = dimse_listener("storage").port("storage")
    archive_config(min_free_mb=10**9)
    assoc = _associate(port)
    rsp = assoc.send_c_store(f.ct_dataset(size=768))
    archive_config(min_free_mb=1)
    assert assoc.send_c_store(f.ct_dataset()).Status == 0
    assoc.release()
    assert rsp.Status == 0xA700 and "full" in rsp.ErrorComment
    assert Instance.objects.count() == 1
    assert not list((storage_root / ".tmp").glob("*"))


def test_an_unforeseen_archive_error_is_a_handler_failure_not_a_bad_uid(dimse_listener, monkeypatch):
    from dimse.handlers import storage as storage_handler

    port = dimse_listener("storage").port("storage")
    ingest = storage_handler.instance_ingest

    def ingest_failing(**kwargs):
        raise ValueError("a bug, not the sender's UID")

    monkeypatch.setattr(storage_handler, "instance_ingest", ingest_failing)
    assoc = _associate(port)
    failed = assoc.send_c_store(f.ct_dataset())
    monkeypatch.setattr(storage_handler, "instance_ingest", ingest)
    after = assoc.send_c_store(f.ct_dataset())
    assoc.release()
    assert failed.Status == 0xC211 and "Unexpected" in failed.ErrorComment
    assert after.Status == 0
    assert Instance.objects.count() == 1

"""dimse.transport: association requests decoded with the UID cache give what pynetdicom alone gives."""

from __future__ import annotations

import logging
import socket
import struct
import subprocess
import time

import pytest
from pydicom.uid import UID
from pynetdicom import AE, pdu_items, pdu_primitives, presentation, utils
from pynetdicom.pdu import A_ASSOCIATE_RQ
from pynetdicom.sop_class import Verification

from dimse.transport import ConformantUID, uid_decoding_cache


def _getscu_request() -> bytes:
    """The A-ASSOCIATE-RQ DCMTK getscu sends: 120-odd storage classes with SCP roles, three syntaxes each."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        client = subprocess.Popen(
            ["getscu", "-S", "-aec", "QRSCP", "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID=1.2.3",
             "127.0.0.1", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            server.settimeout(10)
            conn, _ = server.accept()
            with conn:
                header = conn.recv(6, socket.MSG_WAITALL)
                body = conn.recv(struct.unpack(">I", header[2:])[0], socket.MSG_WAITALL)
        finally:
            client.kill()
            client.wait()
    return header + body


def _decode(data: bytes):
    pdu = A_ASSOCIATE_RQ()
    pdu.decode(data)
    return pdu.to_primitive()


def _summary(primitive) -> tuple:
    contexts = [(cx.context_id, str(cx.abstract_syntax), [str(ts) for ts in cx.transfer_syntax])
                for cx in primitive.presentation_context_definition_list]
    roles = sorted((str(item.sop_class_uid), item.scu_role, item.scp_role) for item in primitive.user_information
                   if type(item).__name__ == "SCP_SCU_RoleSelectionNegotiation")
    return (str(primitive.application_context_name), str(primitive.calling_ae_title),
            str(primitive.called_ae_title), primitive.maximum_length_received, contexts, roles)


def test_association_request_decodes_as_without_the_cache(monkeypatch):
    data = _getscu_request()
    with monkeypatch.context() as plain_pynetdicom:
        for module in (pdu_items, pdu_primitives, presentation):
            plain_pynetdicom.setattr(module, "set_uid", utils.set_uid)
        plain_pynetdicom.setattr(presentation, "UID", UID)
        expected = _summary(_decode(data))
    uid_decoding_cache()
    first, second = _decode(data), _decode(data)
    assert _summary(first) == _summary(second) == expected
    assert len(expected[4]) > 100  # getscu's storage classes were all decoded
    cx1, cx2 = first.presentation_context_definition_list[5], second.presentation_context_definition_list[5]
    assert type(cx2.abstract_syntax) is ConformantUID and cx2.abstract_syntax is cx1.abstract_syntax
    assert cx2.transfer_syntax[0] is cx1.transfer_syntax[0] and cx2.transfer_syntax[0].is_valid


def test_nonconformant_and_invalid_uids_take_pynetdicoms_path_every_time(caplog, monkeypatch):
    uid_decoding_cache()
    monkeypatch.setattr(logging.getLogger("pynetdicom"), "propagate", True)  # the settings keep it to itself
    caplog.set_level(logging.WARNING, logger="pynetdicom")
    for _ in range(2):
        caplog.clear()
        uid = pdu_items.set_uid(b"1.2.03.x", "abstract_syntax_name")  # fits 64 characters, not conformant
        assert uid == "1.2.03.x" and type(uid) is not ConformantUID and not uid.is_valid
        assert "Non-conformant" in caplog.text
        with pytest.raises(ValueError, match="Invalid 'abstract_syntax_name'"):
            pdu_items.set_uid("1." * 40, "abstract_syntax_name")
        with pytest.raises(ValueError, match="must not be an empty"):
            pdu_items.set_uid(b"", "abstract_syntax_name", allow_empty=False)
    assert pdu_items.set_uid(None, "abstract_syntax_name") is None
    conformant = pdu_items.set_uid(b"1.2.840.10008.5.1.4.1.1.2", "abstract_syntax_name")
    assert type(conformant) is ConformantUID and conformant.name == "CT Image Storage"


def test_idle_associations_wait_without_spinning(dimse_listener):
    """Acceptor reactors skip pynetdicom's 1 ms nap (they block on their queue); nothing may busy-wait instead."""
    manager = dimse_listener("qr")
    ae = AE(ae_title="IDLE")
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", manager.port("qr"), ae_title="QRSCP")
    try:
        assert assoc.is_established
        assert assoc.send_c_echo().Status == 0x0000
        # Both ends sit idle for a second, sampled every 50 ms: a spinning reactor fails at the first sample
        # past 0.2 s instead of at the end.
        before_cpu, before = time.process_time(), time.monotonic()
        deadline = before + 1.0
        while time.monotonic() < deadline:
            time.sleep(0.05)
            cpu, wall = time.process_time() - before_cpu, time.monotonic() - before
            assert wall < 0.2 or cpu < 0.3 * wall, f"{cpu:.2f} s of CPU in {wall:.2f} s idle"
        assert assoc.send_c_echo().Status == 0x0000  # and the second request is still answered
    finally:
        assoc.release()

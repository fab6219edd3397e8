"""dimse.encoding and .wire: encodings equal pynetdicom's/pydicom's, its PDUs decode, big files stream.

The fast paths replace pynetdicom's per-message encoding on the Q/R listener;
these tests pin them to the reference encoders byte for byte, then run real
C-GETs over them (small PDUs, unlimited PDUs, files larger than a read block).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.db import connection
from django.db.utils import OperationalError
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, build_role, evt
from pynetdicom.dimse_messages import C_FIND_RSP, C_GET_RSP, C_MOVE_RSP, C_STORE_RQ, C_STORE_RSP
from pynetdicom.dimse_primitives import C_FIND, C_GET, C_MOVE, C_STORE
from pynetdicom.dsutils import encode
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.sop_class import CTImageStorage, StudyRootQueryRetrieveInformationModelGet

from dimse import encoding
from dimse.db import uses_db
from dimse.handlers.query_retrieve import wire
from pacs import matching
from pacs.models import Study
from tests import dicom_factories as f
from tests.dimse.qr_support import seed_study

CT = "1.2.840.10008.5.1.4.1.1.2"


def _reference(message_class, primitive) -> bytes:
    message = message_class()
    message.primitive_to_message(primitive)
    return encode(message.command_set, True, True)


def _response(primitive_class, status, identifier=None, **counts):
    primitive = primitive_class()
    primitive.MessageIDBeingRespondedTo = 7
    primitive.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.2.2.3"
    primitive.Status = status
    for name, value in counts.items():
        setattr(primitive, name, value)
    if identifier is not None:
        primitive.Identifier = io.BytesIO(identifier)
    return primitive


@pytest.mark.parametrize("primitive_class, message_class", [(C_GET, C_GET_RSP), (C_MOVE, C_MOVE_RSP)])
def test_retrieve_responses_encode_as_pynetdicom_does(primitive_class, message_class):
    pending = _response(primitive_class, 0xFF00, NumberOfRemainingSuboperations=99,
                        NumberOfCompletedSuboperations=1, NumberOfFailedSuboperations=0,
                        NumberOfWarningSuboperations=0)
    assert encoding.response_command(pending) == _reference(message_class, pending)
    final = _response(primitive_class, 0xB000, identifier=b"\x08\x00\x58\x00\x04\x00\x31\x2e\x32\x00",
                      NumberOfCompletedSuboperations=99, NumberOfFailedSuboperations=1,
                      NumberOfWarningSuboperations=0)
    assert encoding.response_command(final) == _reference(message_class, final)
    final.ErrorComment = "comment"
    assert encoding.response_command(final) is None  # left to pynetdicom


@pytest.mark.parametrize("status, comment", [(0x0000, ""), (0xA900, "Missing required attribute SeriesInstanceUID")])
def test_store_response_encodes_as_pynetdicom_does(status, comment):
    response = C_STORE()
    response.MessageIDBeingRespondedTo = 65535
    response.AffectedSOPClassUID = CT
    response.AffectedSOPInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    response.Status = status
    if comment:
        response.ErrorComment = comment
    ours = encoding.store_response_command(CT, "1.2.826.0.1.3680043.8.498.1", msg_id=65535, status=status,
                                           comment=comment)
    assert ours == _reference(C_STORE_RSP, response)


def test_find_response_and_store_request_encode_as_pynetdicom_does():
    pending = _response(C_FIND, 0xFF01, identifier=b"\x08\x00\x52\x00\x06\x00STUDY ")
    assert encoding.response_command(pending) == _reference(C_FIND_RSP, pending)
    for originator_aet, originator_id in ((None, None), ("QRSCP", 3), ("ODD", 65535)):
        request = C_STORE()
        request.MessageID = 12
        request.Priority = 2
        request.AffectedSOPClassUID = CT
        request.AffectedSOPInstanceUID = "1.2.3.4.5"
        request.MoveOriginatorApplicationEntityTitle = originator_aet
        request.MoveOriginatorMessageID = originator_id
        request.DataSet = io.BytesIO(b"\x00\x00")
        ours = encoding.store_request_command(CT, "1.2.3.4.5", msg_id=12, originator_aet=originator_aet,
                                          originator_id=originator_id)
        assert ours == _reference(C_STORE_RQ, request)


@pytest.mark.django_db
@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRLittleEndian])
def test_identifiers_encode_as_pydicom_does(storage_root, syntax):
    seed_study(count=2, patient_id="P1", patient_name="WANG^XIAOMING=王^小明", SpecificCharacterSet="ISO_IR 192",
               StudyDate="20240105", AccessionNumber="ODD", StudyDescription="胸部 CT")
    seed_study(count=1, patient_id="P2", patient_name="DOE^JO", modality="MR", AccessionNumber="")
    keywords = ("PatientName", "PatientBirthDate", "StudyDate", "StudyTime", "AccessionNumber", "StudyDescription",
                "ModalitiesInStudy", "NumberOfStudyRelatedInstances", "SOPClassesInStudy", "RetrieveAETitle",
                "InstanceAvailability", "OtherPatientIDs", "IssuerOfPatientID")
    for level, extra in (("STUDY", ()), ("IMAGE", ("Rows", "Columns", "SOPClassUID", "InstanceNumber"))):
        plan = matching.identifier_plan(level, keywords + extra)
        rows = list(matching.identifier_rows(matching.level_queryset(level, {}), plan, retrieve_aet="QRSCP"))
        assert rows
        implicit = syntax == ImplicitVRLittleEndian
        for items in rows:
            expected = encode(matching.identifier_dataset(items), implicit, True, False)
            assert encoding.identifier_bytes(items, implicit=implicit) == expected


def test_sequences_are_left_to_pydicom():
    with pytest.raises(encoding.WireError):
        encoding.identifier_bytes([(0x00081110, "SQ", None)], implicit=True)


@pytest.mark.parametrize("max_pdu", [0, 16384, 4096])
def test_fragments_decode_back_into_the_message(max_pdu):
    data = bytes(range(256)) * 200 + b"end"
    parts: list = []
    encoding.fragments(parts, 5, b"\x00" * 30, command=True, max_pdu=max_pdu)
    encoding.fragments(parts, 5, data, command=False, max_pdu=max_pdu)
    stream = b"".join(parts)
    command, dataset, position, headers = b"", b"", 0, []
    while position < len(stream):
        length = int.from_bytes(stream[position + 2:position + 6], "big")
        pdu = P_DATA_TF()
        pdu.decode(stream[position:position + 6 + length])
        assert not max_pdu or length <= max_pdu
        for item in pdu.presentation_data_value_items:
            assert item.presentation_context_id == 5
            headers.append(item.presentation_data_value[0])
            if item.presentation_data_value[0] & 1:
                command += item.presentation_data_value[1:]
            else:
                dataset += item.presentation_data_value[1:]
        position += 6 + length
    assert (command, dataset) == (b"\x00" * 30, data)
    assert [h & 2 for h in headers].count(2) == 2  # one last fragment each for command and data set
    assert headers[-1] == 0x02


def test_store_responses_are_read_without_pydicom():
    for status, comment in ((0x0000, None), (0xA700, "DISK FULL")):
        response = C_STORE()
        response.MessageIDBeingRespondedTo = 9
        response.AffectedSOPClassUID = CT
        response.AffectedSOPInstanceUID = "1.2.3"
        response.Status = status
        response.ErrorComment = comment
        message = C_STORE_RSP()
        message.primitive_to_message(response)
        (primitive,) = list(message.encode_msg(3, 16384))
        context_id, parsed = encoding.store_response(primitive)
        assert (context_id, parsed.Status, parsed.MessageIDBeingRespondedTo) == (3, status, 9)
        assert parsed.ErrorComment == comment
    response.OffendingElement = [0x00100010]
    message = C_STORE_RSP()
    message.primitive_to_message(response)
    assert encoding.store_response(next(message.encode_msg(3, 16384))) is None  # pynetdicom's path


@pytest.mark.django_db(transaction=True)
def test_uses_db_drops_the_connection_when_a_generator_fails_mid_iteration():
    @uses_db
    def handler():
        yield Study.objects.count()
        raise OperationalError("connection lost")

    generator = handler()
    assert next(generator) == 0
    assert connection.connection is not None
    with pytest.raises(OperationalError):
        next(generator)
    assert connection.connection is None


@pytest.fixture
def qr(dimse_listener):
    return dimse_listener("qr").port("qr")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("max_pdu", [16384, 0])
def test_get_streams_files_larger_than_a_read_block(qr, storage_root, monkeypatch, max_pdu):
    monkeypatch.setattr(wire, "FILE_BLOCK_BYTES", 64 * 1024)  # 512x512x16-bit slices span 8 blocks
    study = seed_study(count=3, size=512)
    received = []
    ae = AE(ae_title="PYGET")
    ae.maximum_pdu_size = max_pdu
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(CTImageStorage, [f.EXPLICIT_LE])

    def store(event):
        ds = event.dataset
        ds.file_meta = event.file_meta
        received.append(ds)
        return 0x0000

    assoc = ae.associate("127.0.0.1", qr, ae_title="QRSCP", ext_neg=[build_role(CTImageStorage, scp_role=True)],
                         evt_handlers=[(evt.EVT_C_STORE, store)])
    identifier = matching.identifier_dataset([(0x00080052, "CS", "STUDY"), (0x0020000D, "UI", study["study"])])
    responses = list(assoc.send_c_get(identifier, StudyRootQueryRetrieveInformationModelGet))
    assoc.release()
    final = responses[-1][0]
    assert (final.Status, final.NumberOfCompletedSuboperations) == (0x0000, 3)
    assert sorted(ds.SOPInstanceUID for ds in received) == sorted(study["sops"])
    for ds in received:
        expected = f.ct_dataset(instance_number=ds.InstanceNumber, size=512).pixel_array
        assert np.array_equal(ds.pixel_array, expected)

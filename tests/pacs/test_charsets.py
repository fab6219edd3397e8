"""Character sets: every declared set, mislabelled Chinese, per-AE override, via every route."""

from __future__ import annotations

import pytest
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage

from dimse.models import RemoteNode
from pacs.models import Patient, Study
from pacs.services.ingest import IngestOrigin, instance_ingest
from tests import dicom_factories as f

NAME = "WANG^XIAOMING=王^小明"


def _with_raw(charset: str | None, name_bytes: bytes, description: bytes = b"") -> bytes:
    """Encode a dataset whose PatientName/StudyDescription carry exactly *name_bytes*."""
    ds = f.ct_dataset()
    if charset is None:
        if "SpecificCharacterSet" in ds:
            del ds.SpecificCharacterSet
    else:
        ds.SpecificCharacterSet = charset.split("\\")
    if len(name_bytes) % 2:
        name_bytes += b" "
    ds[0x00100010] = RawDataElement(Tag(0x00100010), "PN", len(name_bytes), name_bytes, 0, False, True)
    if description:
        if len(description) % 2:
            description += b" "
        ds[0x00081030] = RawDataElement(Tag(0x00081030), "LO", len(description), description, 0, False, True)
    return f.encode(ds)


CASES = [
    ("ISO_IR 192", NAME.encode("utf-8"), NAME),
    ("GB18030", NAME.encode("gb18030"), NAME),
    ("GBK", NAME.encode("gbk"), NAME),
    # GB2312 through ISO 2022: G1 designated by ESC $ ) A before each ideographic run.
    ("\\ISO 2022 IR 58", b"WANG^XIAOMING=\x1b$)A" + "王^小明".encode("gb2312"), NAME),
    ("\\ISO 2022 IR 87", b"YAMADA^TARO=\x1b$B" + "山田^太郎".encode("iso2022_jp")[3:-3] + b"\x1b(B",
     "YAMADA^TARO=山田^太郎"),
    ("\\ISO 2022 IR 149", b"HONG^GILDONG=\x1b$)C" + "홍^길동".encode("euc_kr"), "HONG^GILDONG=홍^길동"),
    ("ISO_IR 100", "MÜLLER^JOSÉ".encode("latin-1"), "MÜLLER^JOSÉ"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("charset", "raw", "expected"), CASES, ids=[c[0] for c in CASES])
def test_declared_character_sets_are_indexed_as_unicode(archive_config, charset, raw, expected):
    instance_ingest(source=_with_raw(charset, raw))
    patient = Patient.objects.get()
    assert patient.patient_name == expected
    assert patient.patient_name_alphabetic == expected.split("=")[0]
    if "=" in expected:
        assert patient.patient_name_ideographic == expected.split("=")[1]


@pytest.mark.django_db
@pytest.mark.parametrize("declared", [None, "ISO_IR 100"])
@pytest.mark.parametrize("codec", ["gbk", "gb18030"])
def test_mislabelled_chinese_is_detected(archive_config, declared, codec):
    instance_ingest(source=_with_raw(declared, "张^三".encode(codec), "胸部CT平扫".encode(codec)))
    patient = Patient.objects.get()
    assert patient.patient_name == "张^三"
    assert Study.objects.get().study_description == "胸部CT平扫"
    # searchable by the Chinese name
    assert Patient.objects.filter(patient_name__contains="张").exists()


@pytest.mark.django_db
def test_latin1_accents_are_not_mistaken_for_chinese(archive_config):
    instance_ingest(source=_with_raw("ISO_IR 100", "MÜLLER^BJØRN".encode("latin-1")))
    assert Patient.objects.get().patient_name == "MÜLLER^BJØRN"


@pytest.mark.django_db
def test_per_ae_override_beats_the_declared_set(archive_config):
    # A device that declares ISO_IR 192 but really sends GB18030.
    raw = "李^四".encode("gb18030") + b"\xa1\xa1"  # invalid UTF-8, valid GB18030
    instance_ingest(source=_with_raw("ISO_IR 100", raw),
                    origin=IngestOrigin(source="c-store", calling_aet="OLDCT", charset_override="GB18030"))
    assert Patient.objects.get().patient_name.startswith("李^四")


@pytest.mark.django_db(transaction=True)
def test_override_applies_to_c_store_from_that_ae(dimse_listener):
    RemoteNode.objects.create(ae_title="OLDCT", host="127.0.0.1", port=104, charset_override="GBK")
    port = dimse_listener("storage").port("storage")
    # Declared Greek (ISO_IR 126) - wrong - bytes are GBK: the override fixes it.
    data = _with_raw("ISO_IR 126", "赵^六".encode("gbk"))
    from io import BytesIO

    from pydicom import dcmread

    ds = dcmread(BytesIO(data))
    ae = AE(ae_title="OLDCT")
    ae.add_requested_context(CTImageStorage, f.EXPLICIT_LE)
    assoc = ae.associate("127.0.0.1", port, ae_title="STORESCP")
    assert assoc.send_c_store(ds).Status == 0
    assoc.release()
    assert Patient.objects.get().patient_name == "赵^六"


@pytest.mark.django_db(transaction=True)
def test_storescu_mislabelled_gbk_name_shows_correctly(dimse_listener, tmp_path):
    import subprocess

    port = dimse_listener("storage").port("storage")
    path = tmp_path / "gbk.dcm"
    path.write_bytes(_with_raw(None, "王^小明".encode("gbk")))
    result = subprocess.run(["storescu", "-aec", "STORESCP", "127.0.0.1", str(port), str(path)],
                            capture_output=True, text=True, timeout=60, env={"TCP_NODELAY": "1", "PATH": "/usr/bin"})
    assert result.returncode == 0, result.stderr
    assert Patient.objects.get().patient_name == "王^小明"

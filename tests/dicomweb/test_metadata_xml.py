"""WADO-RS metadata as application/dicom+xml (PS3.18 F.3, PS3.19 A.1 Native DICOM Model).

The documents are checked three ways: against the structure rules of the
PS3.19 A.1.6 schema (element names, attributes, which children each VR may
have, value numbering), element by element against DCMTK's own Native DICOM
Model writer (``dcm2xml --native-format``) for the same stored file, and by
reading them back into a dataset equal to the stored one.
"""

from __future__ import annotations

import base64
import re
import subprocess
from xml.etree import ElementTree as ET

import pytest
from pydicom import dcmread
from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from pacs.models import Instance
from pacs.storage import absolute_path
from tests import dicom_factories as f
from tests.dicomweb.conftest import ingest, multipart_parts

pytestmark = pytest.mark.django_db(transaction=True)

NS = "http://dicom.nema.org/PS3.19/models/NativeDICOM"
Q = "{" + NS + "}"
XML_MULTIPART = 'multipart/related; type="application/dicom+xml"'
VRS = {"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FL", "FD", "IS", "LO", "LT", "OB", "OD", "OF", "OL", "OV", "OW",
       "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN", "UR", "US", "UT", "UV"}
BINARY = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}
NAME_PARTS = ["FamilyName", "GivenName", "MiddleName", "NamePrefix", "NameSuffix"]
FLOATS = {"FL", "FD", "DS"}


def rich_dataset(**kwargs) -> Dataset:
    """Every kind of value the model distinguishes: PN groups, nested sequences, AT, numbers, private, empty."""
    ds = f.ct_dataset(patient_name="Yamada^Tarou^^Dr^III=山田^太郎=やまだ^たろう", **kwargs)
    ds.SpecificCharacterSet = "ISO_IR 192"
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "CT1", "LOCAL", "Head <contrast> & neck"
    modifier = Dataset()
    modifier.CodeValue, modifier.CodingSchemeDesignator, modifier.CodeMeaning = "M1", "LOCAL", "left"
    code.ProcedureCodeSequence = Sequence([modifier])  # a sequence inside an item
    ds.ProcedureCodeSequence = Sequence([code, Dataset()])  # and an empty item
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = ["-125.5", "-130", "42.25"]
    ds.FrameIncrementPointer = 0x00181063
    ds.PixelSpacing = [0.5, 0.5]
    ds.SliceThickness = "1.25"
    ds.ReferencedFrameNumber = None  # present and empty
    ds.AdditionalPatientHistory = "line one\\still one value"  # LT: a backslash is text
    ds.add_new(0x00190010, "LO", "ACME 1.0")
    ds.add_new(0x00191010, "LO", "private value")
    ds.add_new(0x00191011, "US", [7, 8])
    ds.add_new(0x00191012, "OB", bytes(range(16)))
    ds.RedPaletteColorLookupTableData = bytes(4096)  # a binary value above the bulk data threshold
    return ds


def _validate(node: ET.Element, path: str = "") -> int:
    """Assert the PS3.19 A.1.6 structure below *node*; returns the attributes checked."""
    count = 0
    for attribute in node:
        assert attribute.tag == Q + "DicomAttribute", f"{path}: unexpected {attribute.tag}"
        tag, vr = attribute.get("tag", ""), attribute.get("vr", "")
        where = f"{path}/{tag}"
        assert re.fullmatch(r"[0-9A-F]{8}", tag), where
        assert vr in VRS, where
        assert set(attribute.attrib) <= {"tag", "vr", "keyword", "privateCreator"}, where
        group = int(tag[:4], 16)
        if "keyword" in attribute.attrib:
            assert attribute.get("keyword") == keyword_for_tag(int(tag, 16)), where
        if "privateCreator" in attribute.attrib:
            assert group % 2 == 1 and tag[4:6] == "00", where  # the block byte is written as 00
        kinds = {child.tag.removeprefix(Q) for child in attribute}
        if vr == "SQ":
            assert kinds <= {"Item"}, where
            for number, item in enumerate(attribute, start=1):
                assert item.get("number") == str(number), where
                count += _validate(item, where)
        elif vr == "PN":
            assert kinds <= {"PersonName"}, where
            for name in attribute:
                assert [g.tag.removeprefix(Q) for g in name] == [
                    g for g in ("Alphabetic", "Ideographic", "Phonetic") if name.find(Q + g) is not None]
                for group_node in name:
                    parts = [p.tag.removeprefix(Q) for p in group_node]
                    assert parts == [p for p in NAME_PARTS if p in parts], where
        elif vr in BINARY:
            assert len(attribute) <= 1 and kinds <= {"BulkData", "InlineBinary"}, where
            bulk = attribute.find(Q + "BulkData")
            assert bulk is None or bulk.get("uri", "").startswith("http"), where
        else:
            assert kinds <= {"Value"}, where
            assert [v.get("number") for v in attribute] == [str(n) for n in range(1, len(attribute) + 1)], where
        count += 1
    return count


def _normalised(node: ET.Element) -> list:
    """Comparable form of a document: binary values as a marker, numbers as floats."""
    out = []
    for attribute in node.findall(Q + "DicomAttribute"):
        vr, children = attribute.get("vr"), []
        for child in attribute:
            kind = child.tag.removeprefix(Q)
            if kind == "Item":
                children.append(("Item", _normalised(child)))
            elif kind == "PersonName":
                children.append([(g.tag, [(p.tag, p.text) for p in g]) for g in child])
            elif kind in ("BulkData", "InlineBinary"):
                children.append("binary")
            elif vr in FLOATS:
                children.append(float(child.text))
            else:
                children.append(child.text or "")
        out.append((attribute.get("tag"), vr, attribute.get("keyword"), attribute.get("privateCreator"), children))
    return out


def _name_group(group: ET.Element | None) -> str:
    if group is None:
        return ""
    parts = {p.tag.removeprefix(Q): p.text or "" for p in group}
    return "^".join(parts.get(name, "") for name in NAME_PARTS).rstrip("^")


def _dataset_from_xml(node: ET.Element) -> Dataset:
    """Read a Native DICOM Model document back (test-side reader)."""
    ds = Dataset()
    for attribute in node.findall(Q + "DicomAttribute"):
        tag, vr = int(attribute.get("tag"), 16), attribute.get("vr")
        if attribute.get("privateCreator"):
            continue  # private blocks are checked against DCMTK instead
        if vr == "SQ":
            value = [_dataset_from_xml(item) for item in attribute.findall(Q + "Item")]
        elif vr == "PN":
            value = ["=".join(_name_group(name.find(Q + g)) for g in ("Alphabetic", "Ideographic", "Phonetic"))
                     .rstrip("=") for name in attribute.findall(Q + "PersonName")]
        elif vr in BINARY:
            inline = attribute.find(Q + "InlineBinary")
            value = base64.b64decode(inline.text) if inline is not None else None
        else:
            value = [v.text or "" for v in attribute.findall(Q + "Value")]
            if vr == "AT":
                value = [int(v, 16) for v in value]
            elif vr in ("US", "SS", "UL", "SL", "SV", "UV"):
                value = [int(v) for v in value]
            elif vr in ("FL", "FD"):
                value = [float(v) for v in value]
        if isinstance(value, list) and len(value) == 1 and vr != "SQ":
            value = value[0]
        ds.add_new(tag, vr, value if value != [] else None)
    return ds


def _url(http, ds, suffix: str = "") -> str:
    return http.url(f"/dicomweb/studies/{ds.StudyInstanceUID}{suffix}")


@pytest.fixture
def xml_study(archive_config):
    study, series = generate_uid(), generate_uid()
    datasets = [rich_dataset(study_uid=study, series_uid=series, instance_number=n) for n in (1, 2)]
    for ds in datasets:
        ingest(ds)
    return datasets


def test_study_metadata_as_multipart_xml_follows_the_native_model(http, xml_study):
    response = http.get(_url(http, xml_study[0], "/metadata"), headers={"Accept": XML_MULTIPART})
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith('multipart/related; type="application/dicom+xml"')
    parts = multipart_parts(response)
    assert len(parts) == 2 and all(h["content-type"] == "application/dicom+xml" for h, _ in parts)
    for _, body in parts:
        assert body.startswith(b"<?xml")
        root = ET.fromstring(body)
        assert root.tag == Q + "NativeDicomModel"
        assert root.get("{http://www.w3.org/XML/1998/namespace}space") == "preserve"
        assert _validate(root) > 40
        pixel = root.find(f"{Q}DicomAttribute[@tag='7FE00010']/{Q}BulkData")
        bulk = http.get(pixel.get("uri"))
        assert bulk.status_code == 200 and len(multipart_parts(bulk)[0][1]) == 32 * 32 * 2


def test_xml_matches_dcmtk_and_reads_back_to_the_stored_dataset(http, xml_study, tmp_path):
    ds = xml_study[0]
    url = _url(http, ds, f"/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}/metadata")
    response = http.get(url, headers={"Accept": "application/dicom+xml"})  # one instance: a plain document
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/dicom+xml"
    ours = ET.fromstring(response.content)
    path = absolute_path(Instance.objects.get(sop_instance_uid=ds.SOPInstanceUID).file_path)
    dcmtk = subprocess.run(["dcm2xml", "--native-format", "--use-xml-namespace", "--charset-assume", "ISO_IR 192",
                            str(path)], capture_output=True, check=True, timeout=60).stdout
    expected = _normalised(ET.fromstring(dcmtk))
    assert len(expected) > 40 and any(item[3] == "ACME 1.0" for item in expected)  # private block included
    assert _normalised(ours) == expected

    back = _dataset_from_xml(ours)
    stored = dcmread(path, stop_before_pixels=True)
    for elem in stored:
        if elem.tag.is_private or elem.VR in BINARY and elem.tag in back and back[elem.tag].value is None:
            continue
        assert elem.tag in back, elem.keyword
        if elem.VR == "SQ":
            assert len(back[elem.tag].value) == len(elem.value)
            continue
        if elem.VR == "PN":
            assert str(back[elem.tag].value) == str(elem.value)
            continue
        assert back[elem.tag].value == elem.value, elem.keyword
    code = back.ProcedureCodeSequence[0]
    assert code.CodeMeaning == "Head <contrast> & neck"
    assert code.ProcedureCodeSequence[0].CodeMeaning == "left"
    assert str(back.PatientName) == "Yamada^Tarou^^Dr^III=山田^太郎=やまだ^たろう"


def test_inlinebinary_and_not_acceptable_xml(http, xml_study):
    ds = xml_study[0]
    inline = http.get(_url(http, ds, "/metadata"), params={"inlinebinary": "true"},
                      headers={"Accept": XML_MULTIPART})
    root = ET.fromstring(multipart_parts(inline)[0][1])
    lut = root.find(f"{Q}DicomAttribute[@tag='00281201']/{Q}InlineBinary")
    assert base64.b64decode(lut.text) == bytes(4096)
    assert root.find(f".//{Q}BulkData") is None
    # Two instances cannot be one application/dicom+xml document.
    several = http.get(_url(http, ds, "/metadata"), headers={"Accept": "application/dicom+xml"})
    assert several.status_code == 406 and "multipart/related" in several.json()["detail"]
    assert http.get(_url(http, ds, "/metadata"), headers={"Accept": "text/xml"}).status_code == 406
    json_answer = http.get(_url(http, ds, "/metadata"),
                           headers={"Accept": "application/dicom+xml, application/dicom+json;q=0.5"})
    assert json_answer.status_code == 200 and isinstance(json_answer.json(), list)

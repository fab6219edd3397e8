"""Native DICOM Model (PS3.19 A.1) for ``application/dicom+xml`` metadata (PS3.18 F.3).

pydicom has no XML writer; this is a small one.  One document per instance::

    <?xml version="1.0" encoding="UTF-8"?>
    <NativeDicomModel xmlns="http://dicom.nema.org/PS3.19/models/NativeDICOM" xml:space="preserve">
      <DicomAttribute tag="00100010" vr="PN" keyword="PatientName">
        <PersonName number="1"><Alphabetic><FamilyName>DOE</FamilyName>...</Alphabetic></PersonName>
      </DicomAttribute>
      <DicomAttribute tag="00081032" vr="SQ" keyword="ProcedureCodeSequence">
        <Item number="1"><DicomAttribute .../></Item>
      </DicomAttribute>
      <DicomAttribute tag="7FE00010" vr="OW" keyword="PixelData"><BulkData uri="..."/></DicomAttribute>
    </NativeDicomModel>

* Values are ``<Value number="n">`` (1-based); AT as 8 hex digits; PN as
  ``PersonName`` with its Alphabetic/Ideographic/Phonetic component groups
  split into FamilyName, GivenName, MiddleName, NamePrefix, NameSuffix; an
  empty attribute has no child.
* Binary values are ``InlineBinary`` (base64, as held: little endian) or, at
  the top level above :data:`dicomweb.dicomjson.BULK_THRESHOLD`, ``BulkData``
  with the same URI the JSON metadata gives; Pixel Data is always BulkData.
* Private data elements: ``tag`` with the block byte as 00 (``00091010`` ->
  ``00090010``) and ``privateCreator`` naming the creator (PS3.19 A.1.1), as
  DCMTK ``dcm2xml --native-format`` writes them.
* Characters XML 1.0 cannot carry (control characters in corrupt text) become
  U+FFFD so the document always parses.
"""

from __future__ import annotations

import base64
import re
from xml.etree import ElementTree as ET

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from dicomweb.dicomjson import BULK_THRESHOLD, tag_key

NAMESPACE = "http://dicom.nema.org/PS3.19/models/NativeDICOM"
MEDIA_TYPE = "application/dicom+xml"
_XML_SPACE = "{http://www.w3.org/XML/1998/namespace}space"
_BINARY_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}
_NAME_PARTS = ("FamilyName", "GivenName", "MiddleName", "NamePrefix", "NameSuffix")
_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(value: object) -> str:
    return _NOT_XML.sub("\ufffd", str(value))


def _values(elem: DataElement) -> list:
    if elem.is_empty:
        return []
    if elem.VM == 1 or isinstance(elem.value, (str, bytes)):
        return [elem.value]
    return list(elem.value)


def _person_name(parent: ET.Element, number: int, value: object) -> None:
    node = ET.SubElement(parent, "PersonName", number=str(number))
    for group_name, group in zip(_GROUPS, str(value).split("="), strict=False):
        if not group:
            continue
        group_node = ET.SubElement(node, group_name)
        for part_name, part in zip(_NAME_PARTS, group.split("^"), strict=False):
            if part:
                ET.SubElement(group_node, part_name).text = _text(part)


def _private_attributes(ds: Dataset, elem: DataElement) -> dict[str, str]:
    """``tag``/``privateCreator`` of a private data element (PS3.19 A.1.1)."""
    group, element = elem.tag.group, elem.tag.element
    if elem.tag.is_private_creator:
        return {"tag": tag_key(elem.tag)}
    creator_tag = (group << 16) | (element >> 8)
    creator = ds.get(creator_tag)
    attributes = {"tag": f"{group:04X}00{element & 0xFF:02X}"}
    if creator is not None and creator.value:
        attributes["privateCreator"] = _text(str(creator.value).strip())
    return attributes


def _attribute(parent: ET.Element, ds: Dataset, elem: DataElement, bulk_uri: str | None) -> None:
    vr = elem.VR
    attributes = _private_attributes(ds, elem) if elem.tag.is_private else {"tag": tag_key(elem.tag)}
    attributes["vr"] = vr
    if elem.keyword:
        attributes["keyword"] = elem.keyword
    node = ET.SubElement(parent, "DicomAttribute", attributes)
    if vr == "SQ":
        for number, item in enumerate(elem.value or [], start=1):
            item_node = ET.SubElement(node, "Item", number=str(number))
            for child in item:
                _attribute(item_node, item, child, None)
        return
    if vr in _BINARY_VRS:
        if elem.is_empty:
            return
        raw = elem.value if isinstance(elem.value, (bytes, bytearray)) else b""
        if bulk_uri and len(raw) > BULK_THRESHOLD:
            ET.SubElement(node, "BulkData", uri=f"{bulk_uri}/{tag_key(elem.tag)}")
        else:
            ET.SubElement(node, "InlineBinary").text = base64.b64encode(bytes(raw)).decode()
        return
    for number, value in enumerate(_values(elem), start=1):
        if vr == "PN":
            _person_name(node, number, value)
            continue
        text = f"{int(value):08X}" if vr == "AT" else ("" if value is None else value)
        ET.SubElement(node, "Value", number=str(number)).text = _text(text)


def dataset_xml(ds: Dataset, *, bulk_uri: str | None, pixel: dict | None = None) -> bytes:
    """The Native DICOM Model document of *ds* (UTF-8 bytes with the XML declaration).

    ``bulk_uri`` is the instance's ``.../bulkdata`` URL (``None``: binary values
    inline); *pixel* is :func:`dicomweb.dicomjson.pixel_element_locate`'s
    description of the Pixel Data element not loaded with the header.
    """
    root = ET.Element("NativeDicomModel", {"xmlns": NAMESPACE, _XML_SPACE: "preserve"})
    for elem in ds:
        if elem.tag.group == 0x0002 or elem.tag.element == 0x0000:
            continue
        _attribute(root, ds, elem, bulk_uri)
    if pixel is not None:
        key = tag_key(pixel["tag"])
        node = ET.SubElement(root, "DicomAttribute", tag=key, vr=pixel["vr"], keyword="PixelData")
        if bulk_uri:
            ET.SubElement(node, "BulkData", uri=f"{bulk_uri}/{key}")
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


__all__ = ["MEDIA_TYPE", "NAMESPACE", "dataset_xml"]

"""Printer status and Presentation LUTs of the Print SCP (PS3.4 H.4.7, H.4.9)."""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import generate_uid

from printing.exceptions import DuplicateSOPInstance, InvalidAttributeValue, MissingAttribute, NoSuchObjectInstance
from printing.services.context import PRINTER_INSTANCE, PrintContext, attribute_text, records_failure, uid_checked

PRINTER_NAME = "PACS film composer"


def printer_get(*, sop_instance_uid: str, identifiers: list[int] | None = None) -> Dataset:
    """N-GET of the Printer SOP instance: status and identification (PS3.4 H.4.7.2.1).

    Raises
    ------
    NoSuchObjectInstance
        The instance is not the well-known Printer SOP Instance.
    """
    if sop_instance_uid != PRINTER_INSTANCE:
        raise NoSuchObjectInstance(f"Printer SOP Instance must be {PRINTER_INSTANCE}")
    ds = Dataset()
    ds.PrinterStatus = "NORMAL"
    ds.PrinterStatusInfo = "NORMAL"
    ds.PrinterName = PRINTER_NAME
    ds.Manufacturer = "PACS"
    ds.ManufacturerModelName = "Print SCP"
    ds.DeviceSerialNumber = "1"
    ds.SoftwareVersions = "1"
    ds.DateOfLastCalibration = "20250101"
    ds.TimeOfLastCalibration = "000000"
    if identifiers:
        wanted = {Tag(tag) for tag in identifiers}
        for elem in list(ds):
            if elem.tag not in wanted:
                del ds[elem.tag]
    return ds


@records_failure
def presentation_lut_create(
    *, context: PrintContext, sop_instance_uid: str | None, attributes: Dataset
) -> tuple[str, Dataset]:
    """N-CREATE of a Presentation LUT: a Presentation LUT Shape or a LUT sequence (PS3.4 H.4.9.2.1)."""
    shape = attribute_text(attributes, "PresentationLUTShape").upper()
    if shape and shape not in ("IDENTITY", "LIN OD"):
        raise InvalidAttributeValue(f"Presentation LUT Shape {shape!r} must be IDENTITY or LIN OD")
    if not shape and not attributes.get("PresentationLUTSequence"):
        raise MissingAttribute("Presentation LUT Shape or Presentation LUT Sequence is required")
    uid = uid_checked(sop_instance_uid, "Presentation LUT SOP Instance UID") if sop_instance_uid else generate_uid()
    if uid in context.presentation_luts:
        raise DuplicateSOPInstance(f"Presentation LUT already exists: {uid}")
    context.presentation_luts[uid] = attributes.to_json_dict()
    return uid, Dataset()


@records_failure
def presentation_lut_delete(*, context: PrintContext, sop_instance_uid: str) -> None:
    """N-DELETE of a Presentation LUT (PS3.4 H.4.9.2.2)."""
    if context.presentation_luts.pop(sop_instance_uid, None) is None:
        raise NoSuchObjectInstance(f"No such Presentation LUT on this association: {sop_instance_uid}")

"""PS3.15 basic-profile anonymizer (the one used by WADO-URI anonymize=yes and exports)."""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from pacs.services.anonymize import dataset_anonymize, uid_replacement
from tests import dicom_factories as f


def test_basic_profile_removes_phi_private_tags_and_nested_identifiers():
    ds = f.ct_dataset(patient_name="WANG^XIAOMING", patient_id="ID-123", InstitutionName="General Hospital",
                      OperatorsName="TECH^A", PatientAddress="1 Main St", OtherPatientIDs="X9")
    ds.add_new(0x00091010, "LO", "private vendor data")
    item = Dataset()
    item.ReferencedSOPInstanceUID = "1.2.3.4.5"
    item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.ReferencedImageSequence = Sequence([item])
    original_study = ds.StudyInstanceUID
    pixels = ds.PixelData

    dataset_anonymize(ds)

    for keyword in ("InstitutionName", "OperatorsName", "PatientAddress", "OtherPatientIDs"):
        assert keyword not in ds
    assert str(ds.PatientName) == "ANONYMOUS" and ds.PatientID not in ("", "ID-123")
    assert ds.PatientBirthDate == "" and ds.AccessionNumber == "" and ds.ReferringPhysicianName == ""
    assert 0x00091010 not in ds
    assert ds.StudyInstanceUID == uid_replacement(original_study) != original_study
    assert ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID == uid_replacement("1.2.3.4.5")
    assert ds.ReferencedImageSequence[0].ReferencedSOPClassUID == "1.2.840.10008.5.1.4.1.1.2"  # class kept
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.PatientIdentityRemoved == "YES"
    assert ds.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
    assert ds.PixelData == pixels
    assert len(ds.StudyInstanceUID) <= 64 and ds.StudyInstanceUID.startswith("2.25.")

"""De-identification: the PS3.15 Annex E Basic Application Level Confidentiality Profile.

The one anonymizer of the PACS: WADO-URI ``anonymize=yes``, anonymized
downloads and exports all call :func:`dataset_anonymize`.  Actions follow
PS3.15 Table E.1-1 (basic profile column):

* ``D`` replace with a dummy value of the right VR, ``Z`` replace with an empty
  value, ``X`` remove, ``U`` replace the UID by a new one;
* private attributes are removed (E.3.10 not retained);
* UIDs are mapped deterministically (a keyed hash of the original), so every
  instance of a study anonymized separately still lands in one study/series;
* Patient Identity Removed = YES and the De-identification Method Code
  Sequence (113100, "Basic Application Confidentiality Profile") are added.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

# Keyword -> action (PS3.15 Table E.1-1, basic profile; "X/Z" style choices take the first).
ACTIONS: dict[str, str] = {
    "AccessionNumber": "Z",
    "AcquisitionComments": "X",
    "AcquisitionDate": "X",
    "AcquisitionDateTime": "X",
    "AcquisitionDeviceProcessingDescription": "X",
    "AcquisitionTime": "X",
    "ActualHumanPerformersSequence": "X",
    "AdditionalPatientHistory": "X",
    "AdmissionID": "X",
    "AdmittingDiagnosesDescription": "X",
    "Allergies": "X",
    "Arbitrary": "X",
    "AuthorObserverSequence": "X",
    "BranchOfService": "X",
    "CommentsOnThePerformedProcedureStep": "X",
    "ConsultingPhysicianName": "X",
    "ContentCreatorName": "Z",
    "ContentDate": "Z",
    "ContentTime": "Z",
    "ContributionDateTime": "X",
    "CountryOfResidence": "X",
    "CurrentPatientLocation": "X",
    "CurveDate": "X",
    "CurveTime": "X",
    "DerivationDescription": "X",
    "DeviceSerialNumber": "X",
    "EthnicGroup": "X",
    "FrameComments": "X",
    "GraphicAnnotationSequence": "D",
    "IconImageSequence": "X",
    "ImageComments": "X",
    "InstitutionAddress": "X",
    "InstitutionalDepartmentName": "X",
    "InstitutionName": "X",
    "InstanceCreationDate": "X",
    "InstanceCreationTime": "X",
    "IssuerOfPatientID": "X",
    "MedicalAlerts": "X",
    "MedicalRecordLocator": "X",
    "MilitaryRank": "X",
    "ModifiedAttributesSequence": "X",
    "NameOfPhysiciansReadingStudy": "X",
    "Occupation": "X",
    "OperatorsName": "X",
    "OriginalAttributesSequence": "X",
    "OtherPatientIDs": "X",
    "OtherPatientIDsSequence": "X",
    "OtherPatientNames": "X",
    "OverlayDate": "X",
    "OverlayTime": "X",
    "PatientAddress": "X",
    "PatientAge": "X",
    "PatientBirthDate": "Z",
    "PatientBirthName": "X",
    "PatientBirthTime": "X",
    "PatientComments": "X",
    "PatientID": "Z",
    "PatientInsurancePlanCodeSequence": "X",
    "PatientMotherBirthName": "X",
    "PatientName": "Z",
    "PatientReligiousPreference": "X",
    "PatientSex": "Z",
    "PatientSize": "X",
    "PatientState": "X",
    "PatientTelephoneNumbers": "X",
    "PatientWeight": "X",
    "PerformedLocation": "X",
    "PerformedProcedureStepDescription": "X",
    "PerformedProcedureStepID": "X",
    "PerformedProcedureStepStartDate": "X",
    "PerformedProcedureStepStartTime": "X",
    "PerformingPhysicianName": "X",
    "PersonName": "D",
    "PhysiciansOfRecord": "X",
    "PregnancyStatus": "X",
    "ProtocolName": "X",
    "ReferencedPatientSequence": "X",
    "ReferencedPerformedProcedureStepSequence": "X",
    "ReferencedStudySequence": "X",
    "ReferringPhysicianAddress": "X",
    "ReferringPhysicianName": "Z",
    "ReferringPhysicianTelephoneNumbers": "X",
    "RegionOfResidence": "X",
    "RequestAttributesSequence": "X",
    "RequestingPhysician": "X",
    "RequestingService": "X",
    "ResultsInterpreterName": "X",
    "ScheduledPerformingPhysicianName": "X",
    "SeriesDate": "X",
    "SeriesTime": "X",
    "SmokingStatus": "X",
    "SpecialNeeds": "X",
    "StationName": "X",
    "StudyComments": "X",
    "StudyDate": "Z",
    "StudyDescription": "X",
    "StudyID": "Z",
    "StudyTime": "Z",
    "TextComments": "X",
    "TextString": "X",
    "TopicAuthor": "X",
    "TopicKeywords": "X",
    "TopicSubject": "X",
    "TopicTitle": "X",
    "VerifyingObserverName": "D",
    "VerifyingObserverSequence": "D",
    "VisitComments": "X",
    # UIDs (U): replaced consistently.
    "ConcatenationUID": "U",
    "DimensionOrganizationUID": "U",
    "FailedSOPInstanceUIDList": "U",
    "FrameOfReferenceUID": "U",
    "InstanceCreatorUID": "U",
    "IrradiationEventUID": "U",
    "MediaStorageSOPInstanceUID": "U",
    "ReferencedFrameOfReferenceUID": "U",
    "ReferencedSOPInstanceUID": "U",
    "RelatedFrameOfReferenceUID": "U",
    "SeriesInstanceUID": "U",
    "SOPInstanceUID": "U",
    "StorageMediaFileSetUID": "U",
    "StudyInstanceUID": "U",
    "SynchronizationFrameOfReferenceUID": "U",
    "TargetUID": "U",
    "TransactionUID": "U",
    "UID": "U",
}

_DUMMY = {
    "PN": "ANONYMOUS",
    "LO": "ANONYMOUS",
    "SH": "ANON",
    "DA": "19000101",
    "TM": "000000",
    "DT": "19000101000000",
    "CS": "",
    "UI": "",
    "SQ": None,
}
_PREFIX = "2.25."


def uid_replacement(uid: str) -> str:
    """The anonymized UID for *uid*: stable for one installation, not reversible."""
    digest = hashlib.sha256(settings.SECRET_KEY.encode() + b"\x00" + uid.encode()).digest()
    # PS3.5 B.2: a UUID-derived UID under 2.25 (128 bits as a decimal integer).
    return _PREFIX + str(int.from_bytes(digest[:16], "big"))


def _apply(ds: Dataset) -> None:
    for elem in list(ds):
        if elem.tag.is_private:
            del ds[elem.tag]
            continue
        action = ACTIONS.get(elem.keyword)
        if elem.VR == "SQ" and action is None:
            for item in elem.value or []:
                _apply(item)
            continue
        if action is None:
            continue
        if action == "X":
            del ds[elem.tag]
        elif action == "Z":
            elem.value = Sequence() if elem.VR == "SQ" else ""
        elif action == "D":
            if elem.VR == "SQ":
                for item in elem.value or []:
                    _apply(item)
            else:
                elem.value = _DUMMY.get(elem.VR, "ANONYMOUS")
        elif action == "U" and elem.value:
            if elem.VM > 1:
                elem.value = [uid_replacement(str(v)) for v in elem.value]
            else:
                elem.value = uid_replacement(str(elem.value))


def dataset_anonymize(ds: Dataset, *, patient_name: str = "ANONYMOUS", patient_id: str = "") -> Dataset:
    """De-identify *ds* in place (PS3.15 E.1 basic profile) and return it.

    Parameters
    ----------
    ds
        A full dataset (with pixel data); ``file_meta`` is updated too.
    patient_name, patient_id
        Values put in the emptied Patient's Name / Patient ID (type 2: kept present).

    Returns
    -------
    Dataset
        The same object.
    """
    _apply(ds)
    ds.PatientName = patient_name
    ds.PatientID = patient_id or hashlib.sha256(
        (settings.SECRET_KEY + str(ds.get("StudyInstanceUID", ""))).encode()
    ).hexdigest()[:16].upper()
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "PS3.15 Basic Application Level Confidentiality Profile"
    code = Dataset()
    code.CodeValue = "113100"
    code.CodingSchemeDesignator = "DCM"
    code.CodeMeaning = "Basic Application Confidentiality Profile"
    ds.DeidentificationMethodCodeSequence = Sequence([code])
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "SOPInstanceUID" in ds:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds

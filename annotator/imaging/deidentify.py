"""DICOM de-identification after PS3.15 Annex E, Basic Application Level Confidentiality Profile.

Applied to every element of the dataset, of its sequences (recursively) and of its file meta:

- private tags, overlay (60xx) and curve (50xx) groups, and group lengths: removed;
- ``EMPTIED`` (Annex E "Z": Type 2 attributes of the patient, study and image modules such
  as PatientName, PatientID, StudyDate, AccessionNumber): kept with an empty value;
- ``REMOVED`` (Annex E "X"/"D" attributes whose VR does not give them away: other IDs,
  addresses, ages and sizes, institution and device identifiers, free-text descriptions
  and comments, original-attribute and signature sequences): removed;
- every other person name (PN), date (DA), date-time (DT), time (TM), AE title (AE) and
  element of unknown VR (UN): removed, so attributes missing from the lists above are
  covered by their VR;
- instance UIDs (UI values that are not registered DICOM UIDs, except class and transfer
  syntax UIDs): replaced by new random UIDs, the same old UID mapping to the same new one
  throughout the file, so MediaStorageSOPInstanceUID still equals SOPInstanceUID and
  references stay consistent. UIDs are not kept consistent across files.

Everything else is kept, in particular the image pixel module (Rows, Columns, Bits*,
PixelRepresentation, PhotometricInterpretation, PixelData), PixelSpacing,
ImagerPixelSpacing, WindowCenter/Width and RescaleSlope/Intercept. Text burned into the
pixels is not touched (Annex E's Clean Pixel Data option is not implemented).
"""

from __future__ import annotations

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import UID, generate_uid

# LO holds at most 64 characters, so the formal name is carried by the code sequence.
DEIDENTIFICATION_METHOD = "DICOM PS3.15 Annex E Basic Application Confidentiality Profile"
BASIC_PROFILE_CODE = ("113100", "DCM", "Basic Application Confidentiality Profile")

EMPTIED = frozenset(
    """
    PatientName PatientID PatientBirthDate PatientSex ReferringPhysicianName StudyID
    AccessionNumber StudyDate StudyTime ContentDate ContentTime
    """.split()
)

REMOVED = frozenset(
    """
    OtherPatientIDs OtherPatientIDsSequence IssuerOfPatientID IssuerOfPatientIDQualifiersSequence
    PatientAge PatientSize PatientWeight PatientAddress PatientTelephoneNumbers
    PatientTelecomInformation MilitaryRank BranchOfService EthnicGroup Occupation
    MedicalRecordLocator PatientReligiousPreference PatientInsurancePlanCodeSequence
    PatientPrimaryLanguageCodeSequence AdditionalPatientHistory PatientComments PatientState
    PregnancyStatus MedicalAlerts Allergies SmokingStatus CountryOfResidence RegionOfResidence
    PatientSexNeutered PatientTransportArrangements CurrentPatientLocation
    PatientInstitutionResidence ReferencedPatientSequence ReferencedPatientPhotoSequence
    ResponsibleOrganization PersonAddress PersonTelephoneNumbers PersonTelecomInformation
    InsurancePlanIdentification PatientBirthDateInAlternativeCalendar
    PatientDeathDateInAlternativeCalendar PatientAlternativeCalendar
    ReferringPhysicianAddress ReferringPhysicianTelephoneNumbers
    ReferringPhysicianIdentificationSequence ConsultingPhysicianIdentificationSequence
    PhysiciansOfRecordIdentificationSequence PhysiciansReadingStudyIdentificationSequence
    PerformingPhysicianIdentificationSequence OperatorIdentificationSequence
    RequestingPhysicianIdentificationSequence
    AdmissionID IssuerOfAdmissionIDSequence AdmittingDiagnosesDescription
    AdmittingDiagnosesCodeSequence ServiceEpisodeID IssuerOfServiceEpisodeIDSequence
    ServiceEpisodeDescription VisitComments ReasonForVisit DischargeDiagnosisDescription
    IssuerOfAccessionNumberSequence
    StudyDescription SeriesDescription ProtocolName RequestedProcedureDescription
    RequestedProcedureID RequestedProcedureComments ReasonForTheRequestedProcedure
    ImagingServiceRequestComments PlacerOrderNumberImagingServiceRequest
    FillerOrderNumberImagingServiceRequest OrderEntererLocation OrderCallbackPhoneNumber
    PerformedProcedureStepID PerformedProcedureStepDescription ScheduledProcedureStepID
    ScheduledProcedureStepDescription ScheduledStationName PerformedStationName
    PerformedLocation ScheduledProcedureStepLocation RequestAttributesSequence
    ReferencedStudySequence ReferencedPerformedProcedureStepSequence
    CommentsOnThePerformedProcedureStep
    ImageComments FrameComments DerivationDescription AcquisitionComments TextString
    TextComments ContentSequence IdentifyingComments InterpretationText ResultsComments
    AcquisitionDeviceProcessingDescription
    InstitutionName InstitutionAddress InstitutionalDepartmentName InstitutionCodeSequence
    InstitutionalDepartmentTypeCodeSequence StationName DeviceSerialNumber DeviceID PlateID
    DetectorID GantryID CassetteID GeneratorID SourceSerialNumber UniqueDeviceIdentifier
    DeviceDescription DeviceLabel ScheduledHumanPerformersSequence HumanPerformerOrganization
    ActualHumanPerformersSequence VerifyingObserverSequence AuthorObserverSequence
    ParticipantSequence VerifyingOrganization PersonIdentificationCodeSequence
    ModifiedAttributesSequence OriginalAttributesSequence DigitalSignaturesSequence
    MACParametersSequence EncryptedAttributesSequence DataSetTrailingPadding PrivateInformation
    """.split()
)

REMOVED_VRS = frozenset({"PN", "DA", "DT", "TM", "AE", "UN"})
# UIDs that name a kind of thing rather than a patient's instance are kept.
_KEPT_UID_SUFFIXES = ("ClassUID", "TransferSyntaxUID")
_OVERLAY_OR_CURVE_GROUPS = (0x5000, 0x6000)


def deidentify_dataset(ds: Dataset) -> Dataset:
    """De-identify ``ds`` (and its file meta, if any) in place, record how, and return it."""
    uid_map: dict[str, str] = {}
    _clean(ds, uid_map)
    if getattr(ds, "file_meta", None) is not None:
        _clean(ds.file_meta, uid_map)
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = DEIDENTIFICATION_METHOD
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = BASIC_PROFILE_CODE
    ds.DeidentificationMethodCodeSequence = [code]
    ds.LongitudinalTemporalInformationModified = "REMOVED"
    return ds


def _clean(ds: Dataset, uid_map: dict[str, str]) -> None:
    for tag in list(ds.keys()):
        element = ds[tag]
        if _is_removed(element):
            del ds[tag]
        elif element.keyword in EMPTIED:
            element.value = element.empty_value
        elif element.VR == "UI" and not element.keyword.endswith(_KEPT_UID_SUFFIXES):
            _replace_uids(element, uid_map)
        elif element.VR == "SQ":
            for item in element.value:
                _clean(item, uid_map)


def _is_removed(element: DataElement) -> bool:
    tag = element.tag
    return (
        tag.is_private
        or (tag.group & 0xFF00) in _OVERLAY_OR_CURVE_GROUPS
        or (tag.element == 0 and tag.group != 0x0002)  # group lengths, stale after removal
        or element.keyword in REMOVED
        or (element.VR in REMOVED_VRS and element.keyword not in EMPTIED)
    )


def _replace_uids(element: DataElement, uid_map: dict[str, str]) -> None:
    def replace(uid: str) -> str:
        if not uid or UID(uid).keyword:  # empty, or a registered DICOM UID
            return uid
        if uid not in uid_map:
            uid_map[uid] = generate_uid()
        return uid_map[uid]

    if isinstance(element.value, MultiValue):
        element.value = [replace(uid) for uid in element.value]
    else:
        element.value = replace(element.value)

"""De-identification at ingest: DICOM (PS3.15 Basic Profile) and whole-slide images.

DICOM follows the Basic Application Level Confidentiality Profile (PS3.15 Annex E,
Table E.1-1) with two of its options:

- *Retain Longitudinal Temporal Information with Modified Dates* (113107): every
  DA/DT value is shifted by a per-patient offset (times of day are kept), so the
  order of acquisitions used for phase identification survives;
- *Clean Descriptors* (113105): series/protocol/study descriptions and contrast
  agent are kept (phase identification reads them) after removing any occurrence
  of the patient's name or identifiers.

Every other attribute of the profile is removed (X), emptied (Z) or replaced by a
dummy (D); person names not in the table are emptied; private tags and overlay
groups are removed; UIDs are remapped through a keyed hash, consistently within a
study (and across uploads with the same key). Burned-in annotation is *flagged*
(pixel data are not inspected; the flag is raised from the DICOM header as the
profile requires), and whole-slide label/overview instances are dropped.

The link between the original patient identifier and the pseudonym lives in a
:class:`PseudonymTable` stored in its own file, never in the registry database.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hccstrat.interop._wsi_scrub import WsiScrubResult, scrub_wsi

__all__ = [
    "BASIC_PROFILE",
    "DeidResult",
    "PseudonymTable",
    "UIDRemapper",
    "WsiScrubResult",
    "dataset_summary",
    "date_offset_days",
    "deidentify_dataset",
    "is_slide_label",
    "scrub_wsi",
]

# PS3.15 Table E.1-1 (Basic Profile), by keyword. X remove, Z empty, D dummy value.
_X = """
AcquisitionComments AcquisitionContextSequence
AcquisitionDeviceProcessingDescription
AcquisitionProtocolDescription ActualHumanPerformersSequence AdditionalPatientHistory AdmissionID
AdmittingDate AdmittingDiagnosesCodeSequence AdmittingDiagnosesDescription AdmittingTime
Allergies Arbitrary AuthorObserverSequence BranchOfService CassetteID
CommentsOnThePerformedProcedureStep ConfidentialityConstraintOnPatientDataDescription
ContentCreatorIdentificationCodeSequence ContributionDescription CountryOfResidence
CurrentPatientLocation CustodialOrganizationSequence DataSetTrailingPadding DerivationDescription
DetectorID DeviceSerialNumber DeviceUID DigitalSignaturesSequence DischargeDiagnosisDescription
DistributionAddress DistributionName EthnicGroup FrameComments GantryID GeneratorID
HumanPerformerCodeSequence HumanPerformerOrganization IconImageSequence IdentifyingComments
ImageComments ImagePresentationComments ImagingServiceRequestComments InstitutionAddress
InstitutionCodeSequence InstitutionName InstitutionalDepartmentName InsurancePlanIdentification
IntendedRecipientsOfResultsIdentificationSequence InterpretationApproverSequence
InterpretationAuthor InterpretationDiagnosisDescription InterpretationIDIssuer
InterpretationRecorder InterpretationText InterpretationTranscriber IssuerOfAdmissionID
IssuerOfPatientID IssuerOfServiceEpisodeID LastMenstrualDate MedicalAlerts MedicalRecordLocator
MilitaryRank ModifiedAttributesSequence ModifiedImageDescription ModifyingDeviceID
NameOfPhysiciansReadingStudy NamesOfIntendedRecipientsOfResults Occupation
OperatorIdentificationSequence OperatorsName OrderCallbackPhoneNumber OrderEnteredBy
OrderEntererLocation OriginalAttributesSequence OtherPatientIDs OtherPatientIDsSequence
OtherPatientNames ParticipantSequence PatientAddress PatientAge PatientBirthName PatientBirthTime
PatientComments PatientInsurancePlanCodeSequence PatientMotherBirthName
PatientPrimaryLanguageCodeSequence PatientPrimaryLanguageModifierCodeSequence
PatientReligiousPreference PatientSexNeutered PatientSize PatientState PatientTelephoneNumbers
PatientTransportArrangements PatientWeight PerformedLocation PerformedProcedureStepDescription
PerformedProcedureStepEndDate PerformedProcedureStepEndTime PerformedProcedureStepID
PerformedProcedureStepStartDate PerformedProcedureStepStartTime
PerformingPhysicianIdentificationSequence PerformingPhysicianName PersonAddress
PersonTelephoneNumbers PhysicianApprovingInterpretation PhysiciansOfRecord
PhysiciansOfRecordIdentificationSequence PhysiciansReadingStudyIdentificationSequence
PlateID PreMedication ReasonForStudy ReasonForTheImagingServiceRequest
ReasonForTheRequestedProcedure ReferencedPatientAliasSequence ReferencedPatientPhotoSequence
ReferencedPatientSequence ReferringPhysicianAddress ReferringPhysicianIdentificationSequence
ReferringPhysicianTelephoneNumbers RegionOfResidence RequestAttributesSequence
RequestedProcedureComments RequestedProcedureID RequestedProcedureLocation
RequestingPhysician RequestingService ResponsibleOrganization ResponsiblePerson
ResultsComments ResultsDistributionListSequence ResultsIDIssuer ScheduledHumanPerformersSequence
ScheduledPatientInstitutionResidence ScheduledPerformingPhysicianIdentificationSequence
ScheduledPerformingPhysicianName ScheduledProcedureStepDescription ScheduledProcedureStepEndDate
ScheduledProcedureStepEndTime ScheduledProcedureStepLocation ScheduledProcedureStepStartDate
ScheduledProcedureStepStartTime ScheduledStationName ServiceEpisodeDescription ServiceEpisodeID
SmokingStatus SourceImageSequence SpecialNeeds StationName StudyComments StudyIDIssuer
TextComments TextString TopicAuthor TopicKeywords TopicSubject TopicTitle
VerifyingObserverIdentificationCodeSequence VisitComments
ClinicalTrialSeriesDescription ClinicalTrialSeriesID ClinicalTrialTimePointDescription
ConsultingPhysicianIdentificationSequence InstitutionalDepartmentTypeCodeSequence
IssuerOfAccessionNumberSequence OrderCallbackTelecomInformation PatientAlternativeCalendar
PatientBirthDateInAlternativeCalendar PatientDeathDateInAlternativeCalendar
PatientInstitutionResidence PatientTelecomInformation PerformedStationAETitle
PerformedStationGeographicLocationCodeSequence PerformedStationName
PersonIdentificationCodeSequence PersonTelecomInformation PregnancyStatus
RequestedProcedureDescription ScheduledProcedureStepID ScheduledStationAETitle
ScheduledStationGeographicLocationCodeSequence StationAETitle StorageMediaFileSetID
"""
_Z = """
AccessionNumber ContentCreatorName FillerOrderNumberImagingServiceRequest PatientBirthDate
PatientSex
PlacerOrderNumberImagingServiceRequest ReferringPhysicianName StudyID VerifyingObserverName
VerifyingOrganization
ClinicalTrialCoordinatingCenterName ClinicalTrialProtocolEthicsCommitteeApprovalNumber
ClinicalTrialProtocolEthicsCommitteeName ClinicalTrialProtocolID ClinicalTrialProtocolName
ClinicalTrialSiteID ClinicalTrialSiteName ClinicalTrialSponsorName ClinicalTrialSubjectID
ClinicalTrialSubjectReadingID ClinicalTrialTimePointID
"""
# replaced by the pseudonym
_D = "PatientID PatientName"
# kept under the Clean Descriptors option, after removing identifiers from the text
_CLEAN = """
SeriesDescription ProtocolName StudyDescription ContrastBolusAgent BodyPartExamined
"""

#: keyword -> action ("X", "Z", "D")
BASIC_PROFILE: dict[str, str] = {
    **{k: "X" for k in _X.split()},
    **{k: "Z" for k in _Z.split()},
    **{k: "D" for k in _D.split()},
}
_CLEAN_KEYWORDS = frozenset(_CLEAN.split())
_DICOM_ROOT = "1.2.840.10008."
# UIDs naming a class or a coding scheme, not an instance: never remapped (a vendor's
# private SOP class or SNOMED's scheme UID would otherwise become meaningless)
_CLASS_UID_KEYWORDS = frozenset(
    "SOPClassUID ReferencedSOPClassUID MediaStorageSOPClassUID TransferSyntaxUID"
    " CodingSchemeUID MappingResourceUID ContextGroupExtensionCreatorUID SOPClassesInStudy"
    " RelatedGeneralSOPClassUID OriginalSpecializedSOPClassUID"
    " ReferencedSOPClassUIDInFile ReferencedTransferSyntaxUIDInFile".split()
)
_BURNED_MODALITIES = {"US", "SC", "XC", "ES", "OT", "GM", "SM_OVERVIEW"}


class UIDRemapper:
    """Map UIDs to new ``2.25.<n>`` UIDs with a keyed hash (HMAC-SHA256).

    The same key maps the same UID to the same new UID, so references between the
    files of a study stay consistent; without the key the map cannot be inverted.
    """

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.mapped: dict[str, str] = {}

    def __call__(self, uid: str) -> str:
        uid = str(uid).strip().rstrip("\x00")
        if not uid or uid.startswith(_DICOM_ROOT):
            return uid
        if uid not in self.mapped:
            digest = hmac.new(self.key, uid.encode("ascii", "replace"), hashlib.sha256).digest()
            self.mapped[uid] = "2.25." + str(int.from_bytes(digest[:16], "big"))
        return self.mapped[uid]


def date_offset_days(key: bytes, pseudo_id: str, *, max_days: int = 365) -> int:
    """Per-patient date shift in days, in ``[-max_days, -1]`` (keyed, reproducible)."""
    digest = hmac.new(key, b"date:" + pseudo_id.encode("utf-8"), hashlib.sha256).digest()
    return -(1 + int.from_bytes(digest[:4], "big") % max_days)


@dataclass
class DeidResult:
    """What de-identification did to one dataset (no identifying values in it)."""

    burned_in_flag: bool = False
    burned_in_reasons: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    emptied: list[str] = field(default_factory=list)
    n_uids_remapped: int = 0
    n_private_removed: int = 0


def is_slide_label(ds) -> bool:
    """Whether a DICOM instance is a slide label or overview (macro) image."""
    image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
    return any(v in ("LABEL", "OVERVIEW", "THUMBNAIL_LABEL") for v in image_type)


def _shift(value: str, vr: str, days: int) -> str:
    value = str(value).strip()
    if not value:
        return value
    try:
        d = dt.datetime.strptime(value[:8], "%Y%m%d")
    except ValueError:
        return ""  # unparseable date: empty it rather than keep it
    shifted = (d + dt.timedelta(days=days)).strftime("%Y%m%d")
    return shifted + (value[8:] if vr == "DT" else "")


# values of these attributes (anywhere in the dataset) are searched for in free text
_SECRET_KEYWORDS = frozenset(
    "PatientName PatientID OtherPatientIDs OtherPatientNames PatientBirthName"
    " PatientMotherBirthName".split()
)


def _secrets(ds) -> list[str]:
    """Identifying strings of the patient, longest first, to remove from free text.

    Collected from every level of the dataset (e.g. the IDs of OtherPatientIDsSequence),
    with each value of a multi-valued attribute and each part (>= 3 characters) of a name.
    """
    values: list[str] = []
    for elem in ds.iterall():
        if elem.keyword in _SECRET_KEYWORDS and elem.value:
            vals = elem.value if elem.VM > 1 else [elem.value]
            values += [str(v).strip() for v in vals]
    parts = [p for v in values for p in re.split(r"[\^=\s,]+", v) if len(p) >= 3]
    return sorted({v for v in values + parts if len(v) >= 2}, key=len, reverse=True)


def _clean_text(text: str, secrets_: list[str]) -> str:
    """Remove every occurrence of the secrets from ``text`` as a whole word, whatever the
    case: a surname 'Art' must not turn 'ARTERIAL' into 'ERIAL' (the phase of a series
    is read from its description)."""
    if not secrets_:
        return text
    words = "|".join(re.escape(s) for s in secrets_)
    pattern = re.compile(rf"(?<![A-Za-z0-9])(?:{words})(?![A-Za-z0-9])", re.IGNORECASE)
    return pattern.sub("", text)


def _burned_in(ds, result: DeidResult) -> None:
    if str(ds.get("BurnedInAnnotation", "")).upper() == "YES":
        result.burned_in_reasons.append("BurnedInAnnotation is YES")
    modality = str(ds.get("Modality", "")).upper()
    if modality in _BURNED_MODALITIES:
        result.burned_in_reasons.append(f"modality {modality} often carries burned-in text")
    image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
    if "SECONDARY" in image_type and "1.2.840.10008.5.1.4.1.1.7" in str(ds.get("SOPClassUID", "")):
        result.burned_in_reasons.append("secondary capture image")
    if "SCREEN SAVE" in " ".join(image_type):
        result.burned_in_reasons.append("screen save")
    result.burned_in_flag = bool(result.burned_in_reasons)


def deidentify_dataset(
    ds,
    *,
    pseudo_id: str,
    uid_map: UIDRemapper,
    date_shift_days: int | None,
) -> DeidResult:
    """De-identify a pydicom Dataset in place.

    Parameters
    ----------
    ds : pydicom.Dataset
        Dataset to modify (file meta is updated too).
    pseudo_id : str
        Pseudonym written into PatientID and PatientName.
    uid_map : UIDRemapper
        Shared by every file of a study so references stay consistent.
    date_shift_days : int or None
        Shift applied to dates (see :func:`date_offset_days`); ``None`` empties them.

    Returns
    -------
    DeidResult
    """
    result = DeidResult()
    secrets_ = _secrets(ds)
    _burned_in(ds, result)
    n_private = 0

    def walk(dset) -> None:
        nonlocal n_private
        for elem in list(dset):
            tag = elem.tag
            if tag.is_private:
                del dset[tag]
                n_private += 1
                continue
            if tag.group & 0xFF00 in (0x6000, 0x5000):  # overlays and curves
                del dset[tag]
                result.removed.append(f"({tag.group:04X},{tag.element:04X})")
                continue
            kw = elem.keyword
            action = BASIC_PROFILE.get(kw)
            if action == "X":
                del dset[tag]
                result.removed.append(kw)
                continue
            if action == "Z":
                elem.value = [] if elem.VR == "SQ" else ""
                result.emptied.append(kw)
                continue
            if action == "D":
                elem.value = pseudo_id
                continue
            if elem.VR == "SQ":
                for item in elem.value:
                    walk(item)
                continue
            if elem.VR == "UI" and elem.value and kw not in _CLASS_UID_KEYWORDS:
                old = elem.value
                if isinstance(old, list) or getattr(elem, "VM", 1) > 1:
                    elem.value = [uid_map(u) for u in old]
                else:
                    elem.value = uid_map(old)
                result.n_uids_remapped += 1
            elif elem.VR in ("DA", "DT") and elem.value:
                if date_shift_days is None:
                    elem.value = ""
                else:
                    vals = elem.value if elem.VM > 1 else [elem.value]
                    shifted = [_shift(v, elem.VR, date_shift_days) for v in vals]
                    elem.value = shifted if elem.VM > 1 else shifted[0]
            elif elem.VR == "PN" and elem.value:
                elem.value = ""
                result.emptied.append(kw or str(tag))
            elif elem.VR in ("LO", "SH", "LT", "ST", "UT") and elem.value and isinstance(
                elem.value, str
            ):
                cleaned = _clean_text(elem.value, secrets_)
                if cleaned != elem.value:
                    elem.value = cleaned if kw in _CLEAN_KEYWORDS else ""

    walk(ds)
    result.n_private_removed = n_private
    ds.PatientName = pseudo_id
    ds.PatientID = pseudo_id
    ds.PatientIdentityRemoved = "YES"
    shifted = date_shift_days is not None
    dates = "modified dates" if shifted else "dates removed"
    ds.DeidentificationMethod = f"hccstrat PS3.15 Basic Profile; {dates}; clean descriptors"
    # PS3.15 E.3.6: say whether dates were shifted or removed
    ds.LongitudinalTemporalInformationModified = "MODIFIED" if shifted else "REMOVED"
    from pydicom.dataset import Dataset

    options = [("113100", "Basic Application Confidentiality Profile")]
    if shifted:
        options.append(("113107", "Retain Longitudinal Temporal Information Modified Dates Option"))
    options.append(("113105", "Clean Descriptors Option"))
    codes = []
    for value, meaning in options:
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
        codes.append(item)
    ds.DeidentificationMethodCodeSequence = codes
    if result.burned_in_flag:
        ds.BurnedInAnnotation = "YES"
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "MediaStorageSOPInstanceUID" in meta:
        meta.MediaStorageSOPInstanceUID = uid_map(meta.MediaStorageSOPInstanceUID)
    return result


class PseudonymTable:
    """Link between original identifiers and pseudonyms, in its own SQLite file.

    Keep this file apart from the registry (other disk, other permissions): it is
    the only way back from a pseudonym to a person.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def _conn(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30)
        conn.execute(
            "CREATE TABLE IF NOT EXISTS pseudonyms (issuer TEXT NOT NULL, original TEXT NOT NULL,"
            " pseudo_id TEXT NOT NULL, created TEXT NOT NULL, PRIMARY KEY (issuer, original))"
        )
        return conn

    def link(self, issuer: str, original: str, pseudo_id: str) -> str:
        """Record ``original -> pseudo_id`` (keeps an existing link); returns the pseudonym."""
        with self._lock, self._conn() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO pseudonyms VALUES (?, ?, ?, ?)",
                (issuer, original, pseudo_id, dt.datetime.now(dt.UTC).isoformat()),
            )
            row = conn.execute(
                "SELECT pseudo_id FROM pseudonyms WHERE issuer = ? AND original = ?",
                (issuer, original),
            ).fetchone()
        return str(row[0])

    def lookup(self, issuer: str, original: str) -> str | None:
        """Pseudonym of an original identifier, if linked."""
        with self._lock, self._conn() as conn:
            row = conn.execute(
                "SELECT pseudo_id FROM pseudonyms WHERE issuer = ? AND original = ?",
                (issuer, original),
            ).fetchone()
        return None if row is None else str(row[0])

    def count(self) -> int:
        """Number of links."""
        with self._lock, self._conn() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM pseudonyms").fetchone()[0])


def dataset_summary(ds) -> dict[str, Any]:
    """Non-identifying header summary of a de-identified dataset."""
    return {
        "modality": str(ds.get("Modality", "")),
        "series_description": str(ds.get("SeriesDescription", "")),
        "study_uid": str(ds.get("StudyInstanceUID", "")),
        "series_uid": str(ds.get("SeriesInstanceUID", "")),
    }

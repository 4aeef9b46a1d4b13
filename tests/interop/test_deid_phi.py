"""De-identification of a hand-built MR file carrying PHI in every usual hiding place."""

from __future__ import annotations

from io import BytesIO

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage

from hccstrat.interop.deid import UIDRemapper, deidentify_dataset

KEY = b"k" * 32


def _phi_dataset() -> Dataset:
    """An MR image with patient identifiers in names, IDs, free text and sequences."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4.5.100"
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, "1.2.3.4.5.100"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.3.4.5.1", "1.2.3.4.5.2"
    ds.FrameOfReferenceUID = "1.2.3.4.5.3"
    ds.Modality = "MR"
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "DOE^JOHN", "MRN12345", "19600102"
    ds.OtherPatientIDs = ["ALT111", "ALT222"]
    other = Dataset()
    other.PatientID = "OTHER999"
    ds.OtherPatientIDsSequence = [other]
    ds.StudyDate, ds.AcquisitionTime = "20230110", "101500"
    ds.Rows = ds.Columns = 4
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = np.arange(16, dtype=np.uint16).tobytes()
    return ds


def _deid(ds: Dataset, shift: int | None = -10) -> Dataset:
    deidentify_dataset(ds, pseudo_id="P-1", uid_map=UIDRemapper(KEY), date_shift_days=shift)
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return pydicom.dcmread(BytesIO(buf.getvalue()))


def test_a_name_inside_a_word_is_left_alone():
    """Surname 'Art', given name 'Ven': the phase words the pipeline reads must survive."""
    ds = _phi_dataset()
    ds.PatientName = "ART^VEN"
    ds.SeriesDescription = "ARTERIAL phase, Art Ven"
    ds.ProtocolName = "portal venous"
    out = _deid(ds)
    assert out.SeriesDescription.strip(" ,") == "ARTERIAL phase"
    assert out.ProtocolName == "portal venous"


def test_identifiers_removed_from_descriptors_whatever_the_case():
    ds = _phi_dataset()
    ds.StudyDescription = "Liver MRI John Doe"  # name stored upper case, written mixed case
    ds.SeriesDescription = "Portal venous OTHER999"  # ID from OtherPatientIDsSequence
    ds.ProtocolName = "liver alt222"  # second value of a multi-valued OtherPatientIDs
    out = _deid(ds)
    assert out.StudyDescription.strip() == "Liver MRI"
    assert out.SeriesDescription.strip() == "Portal venous"
    assert out.ProtocolName.strip() == "liver"
    text = str(out).lower()
    for phi in ("john", "doe", "mrn12345", "other999", "alt111", "alt222", "19600102"):
        assert phi not in text, phi
    assert out.PatientName == "P-1" and out.PatientID == "P-1"
    assert np.array_equal(out.pixel_array, np.arange(16).reshape(4, 4))


def test_station_trial_and_telecom_attributes_removed():
    ds = _phi_dataset()
    ds.PerformedStationName, ds.PerformedStationAETitle = "ELSEWHERE-MR3", "ELSEWHEREMR3"
    ds.StationAETitle = "ELSEWHEREMR3"
    ds.PatientTelecomInformation = "+44 20 7946 0000"
    ds.PatientBirthDateInAlternativeCalendar = "5720"
    ds.RequestedProcedureDescription = "Liver MRI, St Elsewhere hepatology"
    ds.ScheduledProcedureStepID = "SPS77"
    ds.ClinicalTrialSiteName, ds.ClinicalTrialSubjectID = "St Elsewhere", "SUBJ-0042"
    out = _deid(ds)
    text = str(out)
    for phi in ("ELSEWHERE", "Elsewhere", "7946", "5720", "SPS77", "SUBJ-0042"):
        assert phi not in text, phi
    assert "PerformedStationName" not in out and "StationAETitle" not in out
    assert out.ClinicalTrialSubjectID == ""


def test_deidentification_method_says_whether_dates_were_shifted_or_removed():
    shifted = _deid(_phi_dataset(), shift=-10)
    assert shifted.StudyDate == "20221231" and shifted.AcquisitionTime == "101500"
    assert shifted.LongitudinalTemporalInformationModified == "MODIFIED"
    assert "113107" in {c.CodeValue for c in shifted.DeidentificationMethodCodeSequence}
    removed = _deid(_phi_dataset(), shift=None)
    assert removed.StudyDate == ""
    assert removed.LongitudinalTemporalInformationModified == "REMOVED"
    # the Modified Dates option is not claimed when dates were removed
    assert "113107" not in {c.CodeValue for c in removed.DeidentificationMethodCodeSequence}


def test_class_and_coding_scheme_uids_are_not_remapped():
    vendor_class = "1.2.840.113619.4.26"  # a vendor's private SOP class
    snomed = "2.16.840.1.113883.6.96"
    ds = _phi_dataset()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = vendor_class
    scheme = Dataset()
    scheme.CodingSchemeDesignator, scheme.CodingSchemeUID = "SCT", snomed
    ds.CodingSchemeIdentificationSequence = [scheme]
    ref = Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = vendor_class, "1.2.3.4.5.99"
    ds.ReferencedImageSequence = [ref]
    out = _deid(ds)
    assert out.SOPClassUID == out.file_meta.MediaStorageSOPClassUID == vendor_class
    assert out.CodingSchemeIdentificationSequence[0].CodingSchemeUID == snomed
    assert out.ReferencedImageSequence[0].ReferencedSOPClassUID == vendor_class
    # instance UIDs still are remapped, and the file meta matches the dataset
    assert out.ReferencedImageSequence[0].ReferencedSOPInstanceUID.startswith("2.25.")
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID != "1.2.3.4.5.100"
    assert out.StudyInstanceUID == UIDRemapper(KEY)("1.2.3.4.5.1")

"""DICOM de-identification (PS3.15 Annex E basic profile) of uploaded files."""

from __future__ import annotations

from io import BytesIO

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.uid import RLELossless

from annotator.imaging import decode_image, deidentify_dataset
from annotator.imaging.deidentify import DEIDENTIFICATION_METHOD, EMPTIED, REMOVED
from tests.imaging import samples

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:pydicom")

ANNEX_E_IDS = [
    "PatientID",
    "OtherPatientIDs",
    "OtherPatientIDsSequence",
    "IssuerOfPatientID",
    "AccessionNumber",
    "StudyID",
    "AdmissionID",
    "RequestedProcedureID",
    "PerformedProcedureStepID",
    "DeviceSerialNumber",
    "InstitutionName",
    "InstitutionAddress",
    "StationName",
]
PIXEL_ATTRIBUTES = [
    "Rows",
    "Columns",
    "SamplesPerPixel",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "PhotometricInterpretation",
    "PixelSpacing",
    "WindowCenter",
    "WindowWidth",
    "PixelData",
]


def stored_file(data: bytes) -> tuple[bytes, Dataset]:
    """The de-identified file decode_image returns for ``data``, as bytes and as a dataset."""
    output = decode_image(data, "upload.dcm", max_pixels=10_000_000).deidentified_dicom
    assert output is not None
    return output, dcmread(BytesIO(output))


def all_elements(ds: Dataset):
    """Every element of the dataset and its file meta, sequences included."""
    yield from ds.file_meta.iterall()
    yield from ds.iterall()


@pytest.fixture(scope="module")
def deidentified() -> tuple[bytes, Dataset]:
    return stored_file(samples.dicom_bytes())


def test_no_person_name_date_or_time_keeps_a_value(deidentified):
    _, ds = deidentified
    leftovers = [
        element
        for element in all_elements(ds)
        if element.VR in {"PN", "DA", "DT", "TM"} and not element.is_empty
    ]
    assert leftovers == []


def test_no_private_tag_remains(deidentified):
    _, ds = deidentified
    assert [element for element in all_elements(ds) if element.tag.is_private] == []


@pytest.mark.parametrize("keyword", ANNEX_E_IDS)
def test_identifying_attributes_have_no_value(deidentified, keyword):
    _, ds = deidentified
    values = [e.value for e in all_elements(ds) if e.keyword == keyword and not e.is_empty]
    assert values == []


def test_type_2_attributes_stay_present_but_empty(deidentified):
    _, ds = deidentified
    for keyword in ("PatientName", "PatientID", "StudyDate", "AccessionNumber", "StudyID"):
        assert keyword in ds and ds[keyword].is_empty, keyword


def test_no_identifying_string_survives_anywhere_in_the_file(deidentified):
    output, _ = deidentified
    originals = [*samples.PHI.values(), *samples.ORIGINAL_UIDS.values()]
    originals += [samples.PRIOR_SOP_INSTANCE_UID, "NOWHERE_PACS", "Doe", "Jane", "044Y"]
    assert [text for text in originals if text.encode() in output] == []


def test_instance_uids_are_replaced_consistently(deidentified):
    _, ds = deidentified
    for keyword, original in samples.ORIGINAL_UIDS.items():
        assert ds[keyword].value not in ("", original), keyword
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    reference = ds.ReferencedImageSequence[0]
    assert reference.ReferencedSOPInstanceUID not in (
        samples.PRIOR_SOP_INSTANCE_UID,
        ds.SOPInstanceUID,
    )


def test_the_same_upload_gets_new_uids_each_time(deidentified):
    _, first = deidentified
    _, second = stored_file(samples.dicom_bytes())
    assert first.SOPInstanceUID != second.SOPInstanceUID


def test_class_uids_and_transfer_syntax_are_kept(deidentified):
    _, ds = deidentified
    assert ds.SOPClassUID == samples.DX_FOR_PRESENTATION
    assert ds.file_meta.MediaStorageSOPClassUID == samples.DX_FOR_PRESENTATION
    assert ds.ReferencedImageSequence[0].ReferencedSOPClassUID == samples.DX_FOR_PRESENTATION
    assert ds.file_meta.TransferSyntaxUID == samples.ExplicitVRLittleEndian


def test_pixel_attributes_and_clinical_context_are_kept(deidentified):
    _, ds = deidentified
    original = samples.dicom_dataset()
    for keyword in PIXEL_ATTRIBUTES:
        assert ds[keyword].value == original[keyword].value, keyword
    assert (ds.Modality, ds.BodyPartExamined) == ("DX", "HAND")
    assert ds.AcquisitionContextSequence[0].CodeMeaning == "Positioning"


def test_deidentification_is_recorded(deidentified):
    _, ds = deidentified
    assert ds.PatientIdentityRemoved == "YES"
    assert ds.DeidentificationMethod == DEIDENTIFICATION_METHOD
    code = ds.DeidentificationMethodCodeSequence[0]
    assert (code.CodeValue, code.CodingSchemeDesignator) == ("113100", "DCM")


def test_stored_file_decodes_to_the_same_full_depth_pixels(deidentified):
    output, _ = deidentified
    again = decode_image(output, "stored.dcm", max_pixels=10_000_000)
    assert again.pixels.max() == 4095 and again.bit_depth == 12
    assert again.photometric == "MONOCHROME1" and again.pixel_spacing == (0.1, 0.1)
    np.testing.assert_array_equal(again.pixels, samples.dicom_pixels())


def test_compressed_dicom_is_deidentified_and_stays_compressed():
    output, ds = stored_file(samples.dicom_bytes(RLELossless))
    assert ds.file_meta.TransferSyntaxUID == RLELossless
    assert samples.PHI["PatientName"].encode() not in output
    np.testing.assert_array_equal(ds.pixel_array, samples.dicom_pixels())


def test_deidentify_dataset_works_in_place_on_a_bare_dataset():
    ds = Dataset()
    ds.PatientName = "Roe^Richard"
    ds.PatientBirthDate = "19700101"
    ds.AcquisitionDate = "20240101"
    ds.SOPInstanceUID = "1.2.3.4.5"
    ds.add_new((0x0011, 0x0010), "LO", "VENDOR")
    assert deidentify_dataset(ds) is ds
    assert ds.PatientName == "" and ds.PatientBirthDate == "" and "AcquisitionDate" not in ds
    assert ds.SOPInstanceUID != "1.2.3.4.5" and (0x0011, 0x0010) not in ds


def test_overlays_and_group_lengths_are_removed():
    ds = Dataset()
    ds.add_new((0x6000, 0x3000), "OW", b"\x01\x02")
    ds.add_new((0x6000, 0x4000), "LT", "Jane Doe, left wrist")
    ds.add_new((0x0008, 0x0000), "UL", 1234)
    deidentify_dataset(ds)
    assert not {(0x6000, 0x3000), (0x6000, 0x4000), (0x0008, 0x0000)} & set(ds.keys())


def test_rule_lists_name_real_dicom_attributes():
    assert [keyword for keyword in EMPTIED | REMOVED if tag_for_keyword(keyword) is None] == []

"""The real CR DICOM files of pydicom-data (a dev dependency) and what the tests know of them.

- RG3_UNCR / RG3_J2KR / RG3_J2KI: an extremity, 1760×1760, 10 bits stored, MONOCHROME1,
  window preset L 550 / W 1024; uncompressed, lossless and lossy JPEG 2000.
- RG1_UNCR / RG1_J2KR: a chest, 1841×1955, 15 bits stored, MONOCHROME1, window
  L 15000 / W 30000, and PixelSpacing 0.000\\0.000 (what the device writes for unknown).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from annotator.imaging import DecodedImage, decode_image

# name: (width, height, bits stored, (window center, width), spacing warning)
REAL_FILES = {
    "RG3_UNCR.dcm": (1760, 1760, 10, (550.0, 1024.0), False),
    "RG3_J2KR.dcm": (1760, 1760, 10, (550.0, 1024.0), False),
    "RG3_J2KI.dcm": (1760, 1760, 10, (550.0, 1024.0), False),
    "RG1_UNCR.dcm": (1841, 1955, 15, (15000.0, 30000.0), True),
    "RG1_J2KR.dcm": (1841, 1955, 15, (15000.0, 30000.0), True),
}
LOSSLESS_TWINS = [("RG3_J2KR.dcm", "RG3_UNCR.dcm"), ("RG1_J2KR.dcm", "RG1_UNCR.dcm")]
# Values that identify the patient or the visit, by VR, plus these attributes.
IDENTIFYING_VRS = ("PN", "DA", "DT", "TM")
IDENTIFYING_KEYWORDS = ("PatientID", "OtherPatientIDs", "AccessionNumber", "StudyID")


def real_file(name: str) -> bytes:
    path = get_testdata_file(name, download=False)
    assert path, f"{name} is missing: install the dev extras (pydicom-data), never a download"
    return Path(path).read_bytes()


@cache
def decoded(name: str) -> DecodedImage:
    return decode_image(real_file(name), name, max_pixels=10_000_000)


def identifying_values(ds: Dataset) -> set[str]:
    """Every non-empty name, date, time and identifier in ``ds``, sequences included."""
    return {
        str(element.value)
        for element in ds.iterall()
        if (element.VR in IDENTIFYING_VRS or element.keyword in IDENTIFYING_KEYWORDS)
        and str(element.value).strip()
    }

"""Real CR DICOM files from pydicom-data (see real_dicom.py): decoded, de-identified, kept."""

from __future__ import annotations

from io import BytesIO

import numpy as np
import pytest
from pydicom import dcmread

from annotator.imaging import decode_image
from tests.imaging.real_dicom import (
    LOSSLESS_TWINS,
    REAL_FILES,
    decoded,
    identifying_values,
    real_file,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:pydicom")


@pytest.mark.parametrize("name", REAL_FILES)
def test_real_file_decodes_with_its_depth_size_and_window(name):
    width, height, bits, window, _ = REAL_FILES[name]
    image = decoded(name)
    assert (image.width, image.height) == (width, height)
    assert image.source_format == "dicom" and image.photometric == "MONOCHROME1"
    assert image.bit_depth == bits and image.pixels.dtype == np.uint16
    assert 0 < int(image.pixels.max()) < 1 << bits
    assert (image.window_center, image.window_width) == window  # the file's own preset


@pytest.mark.parametrize("name", REAL_FILES)
def test_real_file_spacing_zero_is_unknown_with_a_warning(name):
    image = decoded(name)
    assert image.pixel_spacing is None
    if REAL_FILES[name][4]:
        assert image.warnings == (
            f"{name} PixelSpacing is not positive (0.0, 0.0): ignored, taken as unknown",
        )
    else:
        assert image.warnings == ()


@pytest.mark.parametrize("name", REAL_FILES)
def test_real_file_is_deidentified(name):
    original = dcmread(BytesIO(real_file(name)))
    phi = identifying_values(original)
    assert {str(original.PatientName), str(original.PatientID), str(original.StudyDate)} <= phi
    stored = dcmread(BytesIO(decoded(name).deidentified_dicom))
    assert stored.PatientName == "" and stored.PatientID == ""
    assert identifying_values(stored) == set()
    kept = {str(element.value) for element in stored.iterall() if element.keyword != "PixelData"}
    assert not phi & kept
    assert stored.PatientIdentityRemoved == "YES"


@pytest.mark.parametrize("name", REAL_FILES)
def test_stored_real_file_keeps_photometric_depth_and_pixels(name):
    image = decoded(name)
    again = decode_image(image.deidentified_dicom, "stored.dcm", max_pixels=10_000_000)
    assert (again.photometric, again.bit_depth) == ("MONOCHROME1", image.bit_depth)
    assert again.sha256 == image.sha256


@pytest.mark.parametrize(("compressed", "uncompressed"), LOSSLESS_TWINS)
def test_lossless_jpeg_2000_decodes_to_its_uncompressed_twin(compressed, uncompressed):
    np.testing.assert_array_equal(decoded(compressed).pixels, decoded(uncompressed).pixels)
    assert decoded(compressed).sha256 == decoded(uncompressed).sha256


def test_lossy_jpeg_2000_decodes_to_the_same_size():
    lossy, uncompressed = decoded("RG3_J2KI.dcm"), decoded("RG3_UNCR.dcm")
    assert lossy.pixels.shape == uncompressed.pixels.shape

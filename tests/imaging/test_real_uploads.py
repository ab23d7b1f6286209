"""The real CR DICOM files of pydicom-data through the upload API, as a user sends them.

Each is accepted, stored de-identified (``/api/images/{id}/original/``), and served with
its full depth and MONOCHROME1 (the image record, the displayable file and the review
pixels), so the viewer inverts it for display.
"""

from __future__ import annotations

from io import BytesIO

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from pydicom import dcmread

from annotator.imaging import decode_image
from annotator.models import Dataset
from tests.imaging.real_dicom import REAL_FILES, decoded, identifying_values, real_file

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore::UserWarning:pydicom"),
]


@pytest.fixture
def dataset():
    return Dataset.objects.create(name="real CR")


def content(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def upload(client, dataset, name: str) -> dict:
    response = client.post(
        f"/api/datasets/{dataset.pk}/images/",
        {"file": SimpleUploadedFile(name, real_file(name))},
    )
    assert response.status_code == 201, response.content
    return response.json()


@pytest.mark.parametrize("name", REAL_FILES)
def test_real_dicom_upload(admin_client, dataset, media_root, name):
    width, height, bits, (center, window_width), _ = REAL_FILES[name]
    record = upload(admin_client, dataset, name)
    assert (record["width"], record["height"], record["bit_depth"]) == (width, height, bits)
    assert record["photometric_interpretation"] == "MONOCHROME1"
    assert (record["window_center"], record["window_width"]) == (center, window_width)

    # the stored DICOM is de-identified
    original = admin_client.get(f"/api/images/{record['id']}/original/")
    assert original.status_code == 200
    stored = dcmread(BytesIO(content(original)))
    assert stored.PatientName == "" and stored.PatientID == ""
    assert identifying_values(stored) == set()
    phi = identifying_values(dcmread(BytesIO(real_file(name))))
    assert not phi & {str(e.value) for e in stored.iterall() if e.keyword != "PixelData"}
    assert (stored.PhotometricInterpretation, stored.BitsStored) == ("MONOCHROME1", bits)

    # the displayable file and the review pixels hold the stored values at full depth,
    # not inverted: the viewer inverts MONOCHROME1 for display
    expected = decoded(name).pixels
    shown = admin_client.get(f"/api/images/{record['id']}/file/")
    assert shown.status_code == 200
    displayable = decode_image(content(shown), "displayable", max_pixels=10_000_000)
    np.testing.assert_array_equal(displayable.pixels, expected)

    pixels = admin_client.get(f"/api/review/images/{record['id']}/pixels/")
    assert pixels.status_code == 200
    assert pixels["X-Photometric"] == "MONOCHROME1"
    assert (pixels["X-Bit-Depth"], pixels["X-Bytes-Per-Pixel"]) == (str(bits), "2")
    values = np.frombuffer(content(pixels), dtype="<u2").reshape(height, width)
    np.testing.assert_array_equal(values, expected)

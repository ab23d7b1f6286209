"""Uploads through the API and the web page: formats, de-identification, refused input."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image as PILImage
from rest_framework.test import APIClient

from annotator.datasets.services.membership import freeze_validation_split
from annotator.models import Image, Photometric, ReviewStatus, Role, Split
from tests.conftest import stored_files
from tests.factories import DatasetFactory, ImageFactory, MembershipFactory, UserFactory
from tests.imaging import samples

pytestmark = pytest.mark.django_db


@pytest.fixture
def radiologist():
    return MembershipFactory(role=Role.RADIOLOGIST)


@pytest.fixture
def api(radiologist):
    client = APIClient()
    client.force_authenticate(radiologist.user)
    return client


def upload(api, dataset, name: str, data: bytes, **fields):
    url = reverse("api-dataset-images", args=[dataset.pk])
    return api.post(url, {"file": SimpleUploadedFile(name, data), **fields}, format="multipart")


def test_png_8_bit(api, radiologist, media_root):
    response = upload(api, radiologist.dataset, "hand.png", samples.png_bytes(bit_depth=8))
    assert response.status_code == 201, response.content
    image = Image.objects.get(pk=response.json()["id"])
    assert (image.width, image.height, image.bit_depth) == (64, 48, 8)
    assert image.split == Split.POOL and image.status == ReviewStatus.UNLABELED


def test_png_16_bit_keeps_full_depth(api, radiologist, media_root):
    data = samples.png_bytes(bit_depth=16)
    response = upload(api, radiologist.dataset, "wrist16.png", data, split="train")
    assert response.status_code == 201, response.content
    image = Image.objects.get(pk=response.json()["id"])
    assert image.bit_depth == 16 and image.split == Split.TRAIN
    with image.file.open("rb") as stored:
        pixels = np.asarray(PILImage.open(stored))
    original = np.asarray(PILImage.open(io.BytesIO(data)))
    assert pixels.max() > 255 and np.array_equal(pixels.astype(np.uint16), original.astype(np.uint16))


def test_jpeg(api, radiologist, media_root):
    response = upload(api, radiologist.dataset, "elbow.jpg", samples.jpeg_bytes())
    assert response.status_code == 201, response.content
    assert Image.objects.get().file.name.endswith(".jpg")


def test_dicom_is_deidentified_and_keeps_depth_photometric_and_spacing(api, radiologist, media_root):
    data = samples.dicom_bytes(photometric="MONOCHROME1", bits_stored=12, pixel_spacing=(0.143, 0.15))
    response = upload(api, radiologist.dataset, "study.dcm", data)
    assert response.status_code == 201, response.content
    image = Image.objects.get()
    assert image.photometric_interpretation == Photometric.MONOCHROME1
    assert image.bit_depth == 12
    assert (image.pixel_spacing_row, image.pixel_spacing_col) == (0.143, 0.15)
    with image.file.open("rb") as stored:
        pixels = np.asarray(PILImage.open(stored))
    assert int(pixels.max()) == 4095  # 12-bit values survive, not squeezed to 8 bits

    # what is stored on disk carries no identifying value at all
    stored_bytes = b"".join((media_root / name).read_bytes() for name in stored_files(media_root))
    for value in samples.PHI.values():
        assert value.encode() not in stored_bytes, value
    with image.original.open("rb") as stored:
        ds = pydicom.dcmread(stored)
    assert ds.PatientIdentityRemoved == "YES"
    assert not any(element.tag.is_private for element in ds.iterall())
    assert not str(ds.get("PatientName", "")) and not ds.get("PatientBirthDate")


def test_same_picture_twice_is_stored_once(api, radiologist, media_root):
    data = samples.png_bytes(bit_depth=16)
    first = upload(api, radiologist.dataset, "a.png", data)
    again = upload(api, radiologist.dataset, "renamed.png", data)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert Image.objects.count() == 1 and len(stored_files(media_root)) == 1


BAD_FILES = [
    ("broken.png", lambda: samples.truncated(samples.png_bytes(size=(256, 256))), "broken.png"),
    ("broken.jpg", lambda: samples.truncated(samples.jpeg_bytes(size=(256, 256))), "broken.jpg"),
    ("fake.dcm", lambda: samples.png_bytes(), "fake.dcm is not a DICOM file"),
    ("nopixels.dcm", lambda: _dicom_without_pixels(), "no pixel data"),
    ("short.dcm", lambda: _dicom_with_short_pixels(), "expected"),
    ("bomb.png", lambda: samples.solid_bilevel_png_bytes(), "over the limit"),
]


def _dicom_without_pixels() -> bytes:
    ds = samples.dicom_dataset()
    del ds.PixelData
    return samples.dicom_file_bytes(ds)


def _dicom_with_short_pixels() -> bytes:
    ds = samples.dicom_dataset()
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]
    return samples.dicom_file_bytes(ds)


@pytest.mark.parametrize(("name", "build", "reason"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_files_get_400_with_a_reason_and_nothing_changes(api, radiologist, media_root, name, build, reason):
    existing = ImageFactory(dataset=radiologist.dataset)
    files_before = stored_files(media_root)
    response = upload(api, radiologist.dataset, name, build())
    assert response.status_code == 400
    assert reason in response.json()["detail"]
    assert list(Image.objects.all()) == [existing]
    assert stored_files(media_root) == files_before


def test_upload_over_the_size_limit_gets_413(api, radiologist, media_root, settings):
    settings.MAX_UPLOAD_BYTES = 2048
    noise = np.random.default_rng(0).integers(0, 65535, size=(64, 64), dtype=np.uint16)
    data = samples.image_bytes(PILImage.fromarray(noise), "PNG")
    assert len(data) > 2048
    response = upload(api, radiologist.dataset, "large.png", data)
    assert response.status_code == 413
    assert "over the upload limit of 2048 bytes" in response.json()["detail"]
    assert not Image.objects.exists() and not stored_files(media_root)


def test_upload_into_a_frozen_validation_split_is_refused(api, radiologist, media_root):
    freeze_validation_split(radiologist.dataset)
    response = upload(api, radiologist.dataset, "v.png", samples.png_bytes(), split="val")
    assert response.status_code == 409
    assert "frozen" in response.json()["detail"]
    assert not Image.objects.exists() and not stored_files(media_root)


def test_viewers_cannot_upload_and_strangers_get_404(media_root):
    viewer = MembershipFactory(role=Role.VIEWER)
    stranger = UserFactory()
    client = APIClient()
    client.force_authenticate(viewer.user)
    assert upload(client, viewer.dataset, "a.png", samples.png_bytes()).status_code == 403
    client.force_authenticate(stranger)
    assert upload(client, viewer.dataset, "a.png", samples.png_bytes()).status_code == 404
    assert not Image.objects.exists()


def test_web_upload_of_several_files_reports_each(client, radiologist, media_root):
    client.force_login(radiologist.user)
    response = client.post(
        reverse("dataset-upload", args=[radiologist.dataset.pk]),
        {
            "files": [
                SimpleUploadedFile("good.dcm", samples.dicom_bytes()),
                SimpleUploadedFile("bad.png", samples.truncated(samples.png_bytes(size=(256, 256)))),
            ],
            "split": "pool",
        },
        follow=True,
    )
    assert response.status_code == 200
    text = [str(m) for m in response.context["messages"]]
    assert any(m.startswith("Added good.dcm") for m in text), text
    assert any(m.startswith("Refused: bad.png") for m in text), text
    assert Image.objects.get().file_name.endswith(".png")  # named by its pixel digest (test_upload_names.py)


def test_web_upload_needs_csrf_token(radiologist, media_root):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(radiologist.user)
    response = client.post(
        reverse("dataset-upload", args=[radiologist.dataset.pk]),
        {"files": SimpleUploadedFile("a.png", samples.png_bytes()), "split": "pool"},
    )
    assert response.status_code == 403 and not Image.objects.exists()


def test_other_datasets_images_are_invisible(api, media_root):
    other = ImageFactory(dataset=DatasetFactory())
    assert api.get(reverse("api-image-detail", args=[other.pk])).status_code == 404

"""Upload file names often carry patient identifiers: with ``anonymize_upload_names`` (on
by default) uploads are stored and exported under a digest of their pixels, on every way
in (API, web form, quick read's "add to the dataset"); COCO imports keep their names."""

from __future__ import annotations

import json

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from rest_framework.test import APIClient

from annotator.datasets.models import Image, Role
from annotator.datasets.services.coco_export import build_coco
from annotator.imaging import decode_image, pixel_sha256
from annotator.learning.models import QuickRead
from tests.conftest import stored_files
from tests.factories import MembershipFactory
from tests.imaging import samples

pytestmark = pytest.mark.django_db

NAME = "DOE_JOHN_MRN12345"


@pytest.fixture
def member(media_root):
    return MembershipFactory(role=Role.RADIOLOGIST)


def expected_name(data: bytes, suffix: str) -> str:
    return pixel_sha256(decode_image(data, "x", max_pixels=10**8).pixels)[:16] + suffix


def assert_nothing_names_the_patient(image, media_root):
    assert NAME not in image.file_name and NAME not in image.file.name
    assert not any(NAME in name for name in stored_files(media_root))
    assert not any(NAME in warning for warning in image.decode_warnings)
    exported = json.dumps(build_coco(image.dataset, ["pool", "train", "val", "test"]))
    assert NAME not in exported


def test_api_upload_is_stored_and_exported_under_its_pixel_digest(member, media_root):
    client = APIClient()
    client.force_authenticate(member.user)
    data = samples.png_bytes(bit_depth=16)
    response = client.post(reverse("api-dataset-images", args=[member.dataset.pk]),
                           {"file": SimpleUploadedFile(f"{NAME}.png", data)}, format="multipart")
    assert response.status_code == 201, response.content
    image = Image.objects.get()
    assert image.file_name == expected_name(data, ".png")
    assert image.file.name == f"datasets/{member.dataset.pk}/uploads/{image.file_name}"
    assert_nothing_names_the_patient(image, media_root)
    info = build_coco(member.dataset, ["pool"])["info"]
    assert info["upload_names_anonymized"] is True and "digest" in info["file_names"]


def test_dicom_warnings_do_not_keep_the_name(member, media_root):
    client = APIClient()
    client.force_authenticate(member.user)
    data = samples.dicom_bytes(pixel_spacing=(0.0, 0.0))
    response = client.post(reverse("api-dataset-images", args=[member.dataset.pk]),
                           {"file": SimpleUploadedFile(f"{NAME}.dcm", data)}, format="multipart")
    assert response.status_code == 201, response.content
    image = Image.objects.get()
    assert image.decode_warnings and image.file_name in image.decode_warnings[0]
    assert_nothing_names_the_patient(image, media_root)


def test_web_form_upload_is_anonymised_too(member, media_root, client):
    client.force_login(member.user)
    data = samples.jpeg_bytes()
    client.post(reverse("dataset-upload", args=[member.dataset.pk]),
                {"files": [SimpleUploadedFile(f"{NAME}.jpg", data)], "split": "pool"})
    image = Image.objects.get()
    assert image.file_name == expected_name(data, ".jpg")
    assert_nothing_names_the_patient(image, media_root)


def test_quick_read_added_to_the_dataset_is_anonymised(member, media_root, client):
    from django.core.files.storage import default_storage

    data = samples.png_bytes()
    read = QuickRead.objects.create(dataset=member.dataset, user=member.user, file_name=f"{NAME}.png", width=64,
                                    height=48, upload=default_storage.save("quick_reads/q.png", ContentFile(data)),
                                    preview="quick_reads/q-preview.png")
    client.force_login(member.user)
    client.post(reverse("quick-read-result", args=[read.pk]))
    image = Image.objects.get()
    assert image.file_name == expected_name(data, ".png")
    assert NAME not in image.file.name


def test_the_setting_off_keeps_the_name_and_the_export_says_so(member, media_root):
    member.dataset.anonymize_upload_names = False
    member.dataset.save()
    client = APIClient()
    client.force_authenticate(member.user)
    client.post(reverse("api-dataset-images", args=[member.dataset.pk]),
                {"file": SimpleUploadedFile(f"{NAME}.png", samples.png_bytes())}, format="multipart")
    assert Image.objects.get().file_name == f"{NAME}.png"
    info = build_coco(member.dataset, ["pool"])["info"]
    assert info["upload_names_anonymized"] is False and "may identify a patient" in info["file_names"]

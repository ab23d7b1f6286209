"""The dataset API's upload accepts the web form's field name too, and explains a
request that sends no file or two."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annotator.models import Image
from tests.imaging import samples
from tests.security_world import client_for, make_world

pytestmark = pytest.mark.django_db


def post(user, dataset, **files):
    return client_for(user).post(f"/api/datasets/{dataset.pk}/images/", files, format="multipart")


def test_upload_takes_file_or_the_web_forms_files(media_root):
    world = make_world()
    before = Image.objects.count()
    first = post(world.reader, world.dataset, file=SimpleUploadedFile("a.png", samples.png_bytes(8, size=(40, 30))))
    second = post(world.reader, world.dataset, files=SimpleUploadedFile("b.png", samples.png_bytes(16, size=(40, 30))))
    assert (first.status_code, second.status_code) == (201, 201), (first.content, second.content)
    assert Image.objects.count() == before + 2


def test_no_file_or_both_names_is_a_clear_400(media_root):
    world = make_world()
    none = post(world.reader, world.dataset)
    both = post(world.reader, world.dataset, file=SimpleUploadedFile("a.png", samples.png_bytes()),
                files=SimpleUploadedFile("b.png", samples.png_bytes()))
    for response in (none, both):
        assert response.status_code == 400 and "'file' (or 'files')" in str(response.json())

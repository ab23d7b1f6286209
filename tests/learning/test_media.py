"""Media and weights on an S3-compatible store (moto's server on 127.0.0.1): what a worker
on another machine needs works through the storage API, with nothing on the local disk."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import boto3
import numpy as np
import pytest
from django.core.files.storage import default_storage
from PIL import Image as PILImage

from annotator.datasets.services.coco_import import import_coco
from annotator.datasets.services.ingest import store_image
from annotator.learning.media import local_copy, local_dataset_dir, model_pixels, storage_is_local
from annotator.learning.services.execution import store_weights
from annotator.models import Image, ImageSource
from tests.conftest import stored_files
from tests.factories import DatasetFactory
from tests.imaging import samples

pytestmark = pytest.mark.django_db
BUCKET = "fracture-media"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail("moto's S3 server did not start")
            time.sleep(0.2)
    yield endpoint
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def s3_storage(s3_endpoint, settings, tmp_path, media_root):
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    client.create_bucket(Bucket=BUCKET)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {
            "bucket_name": BUCKET, "endpoint_url": s3_endpoint, "region_name": "us-east-1",
            "access_key": "test", "secret_key": "test", "file_overwrite": False, "default_acl": None}},
    }
    settings.VAR_DIR = tmp_path / "worker-var"  # the worker's local cache
    yield client
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


def keys(client) -> set[str]:
    return {item["Key"] for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])}


def test_uploads_land_in_the_bucket_and_a_worker_reads_them_back(s3_storage, media_root, settings):
    assert not storage_is_local()
    dataset = DatasetFactory()
    stored = store_image(dataset, samples.dicom_bytes(photometric="MONOCHROME2"), "scan.dcm", source=ImageSource.API)
    image = stored.image
    assert {image.file.name, image.original.name} <= keys(s3_storage)
    assert not stored_files(media_root)  # nothing on the web machine's disk

    pixels = model_pixels(image)  # what the worker feeds the model
    assert pixels.dtype == np.uint16 and pixels.max() == 4095
    assert np.array_equal(pixels, samples.dicom_pixels())
    copy = local_copy(image.file.name)
    assert copy.is_relative_to(settings.VAR_DIR / "cache")
    assert np.array_equal(np.asarray(PILImage.open(copy)), pixels)


def test_an_imported_dataset_and_weights_go_through_the_bucket(s3_storage, phantom_coco, tmp_path):
    report = import_coco(phantom_coco, phantom_coco.parent / "images", "remote")
    assert report.files.stored == 16
    dataset = Image.objects.first().dataset
    names = [image.file.name.removeprefix(f"datasets/{dataset.pk}/") for image in dataset.images.all()]
    folder = local_dataset_dir(dataset, names)
    assert all((folder / name).is_file() for name in names)  # a training snapshot resolves locally

    weights = tmp_path / "weights.pt"
    weights.write_bytes(b"not really weights, but bytes to round-trip")
    name = store_weights(weights, f"models/{dataset.pk}/v-0001.pt")
    assert name in keys(s3_storage)
    assert default_storage.open(name).read() == weights.read_bytes()

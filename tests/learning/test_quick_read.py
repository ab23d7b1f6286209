"""Quick read: upload, the inference task (with a fake engine), and no production model."""

from types import SimpleNamespace

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile

from annotator.imaging import encode_png
from annotator.learning import dispatch
from annotator.learning.services import analysis
from annotator.models import ModelStatus, ModelVersion, QuickRead, QuickReadState, Role
from config.celery import app as celery_app
from ml_backend.contract import Detections
from tests.factories import (
    CategoryFactory,
    DatasetFactory,
    MembershipFactory,
    UserFactory,
    unique_pixels,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def member(media_root, client):
    dataset = DatasetFactory()
    CategoryFactory(dataset=dataset, coco_id=1, name="transverse")
    user = UserFactory()
    MembershipFactory(dataset=dataset, user=user, role=Role.RADIOLOGIST)
    client.force_login(user)
    return dataset, user, client


def upload(client, dataset):
    png = SimpleUploadedFile("wrist.png", encode_png(unique_pixels(3)), content_type="image/png")
    return client.post("/review/quick-read/", {"dataset": dataset.pk, "file": png}, follow=True)


def production(dataset):
    version = ModelVersion(dataset=dataset, name="frcnn-0001", engine="fake", status=ModelStatus.PRODUCTION,
                           weights_sha256="0" * 64)
    version.weights.save("w.pt", ContentFile(b"weights"), save=False)
    version.save()
    return version


def test_without_a_production_model_the_upload_is_refused_clearly(member):
    dataset, _, client = member
    response = upload(client, dataset)
    assert "has no production model yet" in response.content.decode()
    assert not QuickRead.objects.exists()


def test_upload_then_the_task_stores_probability_and_boxes(member, monkeypatch, django_capture_on_commit_callbacks):
    dataset, user, client = member
    version = production(dataset)
    enqueued = []
    monkeypatch.setattr(analysis, "publish_analysis", lambda *args: enqueued.append(args))
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(client, dataset)
    read = QuickRead.objects.get()
    assert enqueued == [(read.pk,)] and response.redirect_chain[-1][0].endswith(f"/review/quick-read/{read.pk}/")
    assert celery_app.amqp.router.route({}, dispatch.ANALYZE)["queue"].name == "inference"

    seen = []
    engine = SimpleNamespace(predict=lambda images: seen.extend(images) or [Detections(
        boxes=np.array([[4, 5, 20, 25], [1, 1, 3, 3]], dtype=np.float32),
        scores=np.array([0.8, 0.1], dtype=np.float32), labels=np.array([1, 1]),
        class_probs=np.zeros((2, 2), dtype=np.float32), embedding=np.zeros(4, dtype=np.float32),
    )])
    monkeypatch.setattr("ml_backend.registry.load_engine", lambda path: engine)
    analysis.analyze_upload(read.pk)
    read.refresh_from_db()
    assert read.state == QuickReadState.DONE and read.model_version == version
    assert read.fracture_probability == pytest.approx(0.8)
    assert read.boxes == [{"bbox": [4.0, 5.0, 16.0, 20.0], "category": 1, "category_name": "transverse",
                           "score": pytest.approx(0.8)}]
    assert np.array_equal(seen[0], unique_pixels(3))
    status = client.get(f"/api/review/quick-reads/{read.pk}/").json()
    assert status["state"] == "done" and status["serving_version"] == "frcnn-0001"


def test_the_task_fails_the_row_clearly_when_the_model_is_gone(member):
    dataset, user, _ = member
    read = QuickRead.objects.create(dataset=dataset, user=user, file_name="x.png", width=64, height=48,
                                    upload="quick_reads/x.png", preview="quick_reads/x-preview.png")
    analysis.analyze_upload(read.pk)
    read.refresh_from_db()
    assert read.state == QuickReadState.FAILED and "no production model" in read.error


def test_other_users_quick_reads_answer_404(member):
    dataset, user, client = member
    read = QuickRead.objects.create(dataset=dataset, user=UserFactory(), file_name="x.png", width=64, height=48,
                                    upload="quick_reads/x.png", preview="quick_reads/x-preview.png")
    assert client.get(f"/api/review/quick-reads/{read.pk}/").status_code == 404


def test_adding_a_quick_read_to_the_dataset_queues_its_proposals(
    member, media_root, monkeypatch, django_capture_on_commit_callbacks
):
    """Quick read's "add to dataset" is a way in like any upload: the new image gets
    proposals from the production model (it once skipped them)."""
    dataset, user, client = member
    version = production(dataset)
    requested = []
    monkeypatch.setattr("annotator.learning.services.predictions.publish_proposals",
                        lambda dataset_id, version_id, ids: requested.append((dataset_id, version_id, ids)))
    monkeypatch.setattr(analysis, "publish_analysis", lambda *args: None)
    with django_capture_on_commit_callbacks(execute=True):
        upload(client, dataset)
        read = QuickRead.objects.get()
        client.post(f"/review/quick-read/{read.pk}/")
    read.refresh_from_db()
    assert read.image is not None
    assert requested == [(dataset.pk, version.pk, [read.image.pk])]

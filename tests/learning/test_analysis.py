"""POST /api/analyze and quick read: one path (row, task, polling); the web never waits."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annotator.learning import dispatch
from annotator.learning.services.analysis import analyze_upload
from annotator.models import ModelStatus, ModelVersion, QuickRead, QuickReadState
from config.celery import app as celery_app
from ml_backend.contract import Detections
from tests.imaging import samples
from tests.security_world import client_for, make_world

pytestmark = pytest.mark.django_db


class FakeEngine:
    def predict(self, images):
        (pixels,) = images
        assert pixels.ndim == 2
        return [Detections(boxes=np.array([[8, 6, 24, 30], [0, 0, 2, 2]], np.float32),
                           scores=np.array([0.8, 0.1], np.float32), labels=np.array([1, 1]),
                           class_probs=np.array([[0.2, 0.8], [0.9, 0.1]], np.float32),
                           embedding=np.zeros(4, np.float32))]


@pytest.fixture
def world(media_root):
    return make_world()


@pytest.fixture
def published(monkeypatch):
    sent = []
    monkeypatch.setattr(dispatch, "publish_analysis", lambda read_id: sent.append(read_id))
    monkeypatch.setattr("annotator.learning.services.analysis.publish_analysis", lambda read_id: sent.append(read_id))
    return sent


def analyze(user, dataset, data=None, name="wrist.png"):
    data = samples.png_bytes() if data is None else data
    return client_for(user).post("/api/analyze", {"dataset": dataset.pk, "file": SimpleUploadedFile(name, data)},
                                 format="multipart")


def test_analyze_answers_202_at_once_and_the_worker_fills_the_row(
    world, monkeypatch, published, django_capture_on_commit_callbacks
):
    world.category.coco_id = 1
    world.category.save()
    with django_capture_on_commit_callbacks(execute=True):
        response = analyze(world.reader, world.dataset)
    assert response.status_code == 202, response.content
    queued = response.json()
    read = QuickRead.objects.get()
    assert queued["state"] == "queued" and queued["result_url"] == f"/api/review/quick-reads/{read.pk}/"
    assert published == [read.pk]
    assert celery_app.amqp.router.route({}, dispatch.ANALYZE)["queue"].name == "inference"

    monkeypatch.setattr("annotator.learning.engine_cache.engine_for", lambda version: FakeEngine())
    analyze_upload(read.pk)
    body = client_for(world.reader).get(queued["result_url"]).json()
    assert body["state"] == "done" and body["fracture_probability"] == pytest.approx(0.8)
    assert body["serving_version"] == "frcnn-0001.p3" and (body["width"], body["height"]) == (64, 48)
    (box,) = body["boxes"]  # 0.1 is under the display threshold
    assert box["bbox"] == pytest.approx([8, 6, 16, 24]) and box["category_name"] == "fracture"


def test_no_production_model_is_503_and_stores_nothing(world, published):
    ModelVersion.objects.filter(pk=world.version.pk).update(status=ModelStatus.ARCHIVED)
    response = analyze(world.reader, world.dataset)
    assert response.status_code == 503 and "no production model" in response.json()["detail"]
    assert not QuickRead.objects.exists() and published == []


def test_a_worker_that_finds_no_model_fails_the_row_clearly(world, published):
    analyze(world.reader, world.dataset)
    ModelVersion.objects.filter(pk=world.version.pk).update(status=ModelStatus.ARCHIVED)
    read = QuickRead.objects.get()
    analyze_upload(read.pk)
    read.refresh_from_db()
    assert read.state == QuickReadState.FAILED and "no production model" in read.error


def test_roles_bad_input_and_other_datasets(world, published):
    assert analyze(world.viewer, world.dataset).status_code == 403  # viewers only read
    assert analyze(world.reader, world.dataset, data=b"<html>", name="x.png").status_code == 400
    assert analyze(world.outsider, world.dataset).status_code == 404
    response = client_for(world.reader).post("/api/analyze", {"dataset": world.dataset.pk, "file": SimpleUploadedFile(
        "x.png", samples.png_bytes()), "extra": "1"}, format="multipart")
    assert response.status_code == 400 and "extra" in response.json()
    assert QuickRead.objects.count() == 0


def test_analyze_is_throttled_per_user(world, published, settings, monkeypatch):
    from rest_framework.throttling import ScopedRateThrottle

    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
        **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "analyze": "2/minute"}}
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"])
    codes = [analyze(world.reader, world.dataset).status_code for _ in range(3)]
    assert codes == [202, 202, 429]

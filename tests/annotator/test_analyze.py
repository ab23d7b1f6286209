"""POST /api/analyze: the request waits for an inference task (no torch in the web)."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annotator.models import ModelStatus, ModelVersion
from ml_backend.contract import Detections
from tests.annotator import imaging_samples as samples
from tests.annotator.security_world import client_for, make_world

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


def analyze(user, dataset, data=None, name="wrist.png"):
    data = samples.png_bytes() if data is None else data
    return client_for(user).post("/api/analyze", {"dataset": dataset.pk, "file": SimpleUploadedFile(name, data)},
                                 format="multipart")


def test_analyze_returns_probability_boxes_and_version(world, settings, monkeypatch):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    world.category.coco_id = 1
    world.category.save()
    monkeypatch.setattr("annotator.tasks.engine_for", lambda version: FakeEngine())
    response = analyze(world.viewer, world.dataset)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["fracture_probability"] == pytest.approx(0.8)
    assert body["model_version"] == "frcnn-0001.p3" and (body["width"], body["height"]) == (64, 48)
    (box,) = body["boxes"]  # 0.1 is under the display threshold
    assert box["bbox"] == pytest.approx([8, 6, 16, 24]) and box["category_name"] == "fracture"


def test_no_production_model_is_503(world):
    ModelVersion.objects.filter(pk=world.version.pk).update(status=ModelStatus.ARCHIVED)
    response = analyze(world.viewer, world.dataset)
    assert response.status_code == 503 and "no production model" in response.json()["detail"]


def test_no_worker_is_503_after_the_timeout(world, settings):
    settings.ANALYZE_TIMEOUT_SECONDS = 1
    response = analyze(world.viewer, world.dataset)
    assert response.status_code == 503 and "no inference worker" in response.json()["detail"]


def test_bad_input_and_other_datasets(world):
    assert analyze(world.viewer, world.dataset, data=b"<html>", name="x.png").status_code == 400
    assert analyze(world.outsider, world.dataset).status_code == 404
    response = client_for(world.viewer).post("/api/analyze", {"dataset": world.dataset.pk, "file": SimpleUploadedFile(
        "x.png", samples.png_bytes()), "extra": "1"}, format="multipart")
    assert response.status_code == 400 and "extra" in response.json()

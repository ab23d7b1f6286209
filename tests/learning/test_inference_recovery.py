"""Inference recovery (issue 16, item 5): what a production version still owes (its
proposals and its ranking) is read from the rows, shown on the dashboard, and asked for
again by the sweeper when its task was lost, e.g. with a worker killed mid-proposals."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from annotator.learning import dispatch
from annotator.learning.serializers import dashboard_state
from annotator.learning.services.inference import inference_state, recover_inference
from annotator.learning.services.versions import request_inference_after_promotion
from annotator.models import ModelStatus, ModelVersion, Prediction, Ranking
from config.celery import app
from tests.e2e.conftest import ROOT, Worker, celery_worker, database_url, wait_for  # noqa: F401
from tests.factories import CategoryFactory, DatasetFactory, ImageFactory
from tests.learning_fixtures import phantom_dataset, random_weights_version


@pytest.fixture
def published(monkeypatch):
    calls = []
    monkeypatch.setattr(dispatch, "publish_after_promotion", lambda *a: calls.append(("proposals", *a)))
    monkeypatch.setattr(dispatch, "publish_ranking", lambda *a: calls.append(("ranking", *a)))
    from annotator.learning.services import inference

    monkeypatch.setattr(inference, "publish_after_promotion", dispatch.publish_after_promotion)
    monkeypatch.setattr(inference, "publish_ranking", dispatch.publish_ranking)
    return calls


def production(dataset, requested_minutes_ago: float | None) -> ModelVersion:
    requested = timezone.now() - timedelta(minutes=requested_minutes_ago) if requested_minutes_ago else None
    return ModelVersion.objects.create(
        dataset=dataset, name="frcnn-0001", engine="torchvision", category_ids=[1], weights="models/x.pt",
        weights_sha256="0" * 64, status=ModelStatus.PRODUCTION, inference_requested_at=requested)


@pytest.mark.django_db
def test_the_sweeper_asks_again_for_what_is_missing_and_only_that(published, settings):
    settings.INFERENCE_RETRY_SECONDS = 300
    dataset = DatasetFactory()
    CategoryFactory(dataset=dataset, coco_id=1)
    images = [ImageFactory(dataset=dataset) for _ in range(3)]
    version = production(dataset, requested_minutes_ago=1)
    Prediction.objects.create(image=images[0], model_version=version, boxes=[], embedding=b"", fracture_probability=0.0)
    assert dashboard_state(dataset)["inference"]["proposals"] == {"done": 1, "due": 3}
    assert dashboard_state(dataset)["inference"]["ranking"] == "missing"

    def recover(**kwargs):  # this dataset's part of the sweep
        return [pk for pk in recover_inference(**kwargs) if pk == version.pk]

    assert recover() == []  # asked a minute ago: not yet
    assert recover(now=timezone.now() + timedelta(minutes=3)) == []  # a prediction came 0 s ago
    assert recover(now=timezone.now() + timedelta(minutes=10)) == [version.pk]
    published[:] = [call for call in published if call[1] == dataset.pk]
    assert published == [("proposals", dataset.pk, version.pk)]
    version.refresh_from_db()
    assert timezone.now() - version.inference_requested_at < timedelta(seconds=5)

    for image in images[1:]:
        Prediction.objects.create(image=image, model_version=version, boxes=[], embedding=b"", fracture_probability=0.0)
    later = timezone.now() + timedelta(minutes=20)
    assert recover(now=later) == [version.pk]  # proposals done, the ranking is not
    published[:] = [call for call in published if call[1] == dataset.pk]
    assert published[-1] == ("ranking", dataset.pk, None, version.pk)
    Ranking.objects.create(dataset=dataset, strategy="ranked_batch", model_version=version)
    assert inference_state(version)["ranking"] == "done"
    assert recover(now=later + timedelta(minutes=20)) == []  # nothing due: nothing asked


def start_worker(tmp_path, media_root, name: str) -> Worker:
    hostname = f"recovery-{name}-{os.getpid()}-{time.monotonic_ns()}@localhost"
    log = tmp_path / f"worker-{name}.log"
    env = {**os.environ, "DATABASE_URL": database_url(), "MEDIA_ROOT": str(media_root), "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo", "-Q", "default,inference",
             "--hostname", hostname, "--without-mingle", "--without-gossip", "--loglevel", "INFO"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    worker = Worker(process, log, hostname)
    wait_for(lambda: app.control.ping(destination=[hostname], timeout=0.5), 60, f"worker {name}", worker)
    return worker


@pytest.mark.worker
def test_a_worker_killed_mid_proposals_is_recovered_by_the_sweeper(celery_worker, tmp_path, media_root, settings):  # noqa: F811
    dataset = phantom_dataset(tmp_path, name=f"recovery-{os.getpid()}", train=4, val=2, pool=12)
    version = random_weights_version(dataset, status=ModelStatus.PRODUCTION)
    due = inference_state(version)["proposals"]["due"]
    request_inference_after_promotion(version)
    wait_for(lambda: Prediction.objects.filter(model_version=version).exists(), 60, "the first predictions",
             celery_worker, interval=0.05)
    celery_worker.kill()  # SIGKILL mid-proposals: the message stays unacknowledged for hours
    state = inference_state(version)
    assert 0 < state["proposals"]["done"] < due, f"the worker finished before it was killed: {state}"
    assert state["ranking"] == "missing"

    replacement = start_worker(tmp_path, media_root, "replacement")
    try:
        time.sleep(1.5)
        assert Prediction.objects.filter(model_version=version).count() == state["proposals"]["done"]  # lost
        settings.INFERENCE_RETRY_SECONDS = 1
        assert version.pk in recover_inference()
        wait_for(lambda: inference_state(version)["ranking"] == "done", 90, "proposals and ranking", replacement)
        assert inference_state(version)["proposals"] == {"done": due, "due": due}
        assert version.pk not in recover_inference()
    finally:
        replacement.process.terminate()
        replacement.process.wait(timeout=30)

"""The whole loop with a real Celery worker on Redis and PostgreSQL, on tiny phantoms:
import -> cold-start ranking -> first run -> promotion -> proposals and ranking by the
model -> new images get proposals -> reviews -> the label rule starts a run -> the gate
promotes it -> re-rank -> rollback restores the previous version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from annotator.datasets.services.annotations import NewBox, create_boxes
from annotator.datasets.services.coco_import import import_coco
from annotator.learning.selectors import policy_of, production_version, serving_version
from annotator.learning.services.predictions import retire_proposals
from annotator.learning.services.runs import request_training_run, sweep_stale_runs
from annotator.learning.services.versions import rollback
from annotator.learning.tasks import rank_dataset, sweep_training
from annotator.models import (
    Annotation,
    AnnotationSource,
    ModelStatus,
    ModelVersion,
    Prediction,
    Ranking,
    ReviewStatus,
    RunState,
    RunTrigger,
    Split,
    TrainingRun,
)
from ml_backend.phantoms import generate_dataset
from tests.e2e.conftest import wait_for
from tests.learning_fixtures import phantom_dataset, random_weights_version

pytestmark = [pytest.mark.worker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
RUN_TIMEOUT = 240


def finished(run_id):
    run = TrainingRun.objects.get(pk=run_id)
    return run if run.state not in (RunState.QUEUED, RunState.RUNNING) else None


def review_with_ground_truth(images, truth: dict[str, list[dict]], categories):
    """Simulate readers through the service layer: the phantom's true boxes replace the
    proposals, and the image is labeled (or labeled negative)."""
    for image in images:
        retire_proposals(image.annotations.filter(source=AnnotationSource.MODEL, is_deleted=False), reason="reviewed")
        boxes = truth.get(image.file_name, [])
        create_boxes([NewBox(image, categories[b["category_id"]], *b["bbox"]) for b in boxes], reason="review")
        image.status = ReviewStatus.LABELED if boxes else ReviewStatus.NEGATIVE
        image.save(update_fields=["status"])


def ground_truth(root: Path) -> dict[str, list[dict]]:
    truth: dict[str, list[dict]] = {}
    for coco_file in root.glob("*/annotations.json"):
        coco = json.loads(coco_file.read_text())
        names = {image["id"]: image["file_name"] for image in coco["images"]}
        for box in coco["annotations"]:
            truth.setdefault(names[box["image_id"]], []).append(box)
    return truth


def test_the_loop_runs_by_itself(celery_worker, tmp_path):
    dataset = phantom_dataset(tmp_path, iterations=8)
    policy = policy_of(dataset)
    policy.gate_margin = 1.0  # a few iterations on 8 images: let the gate pass to exercise promotion
    policy.retrain_after_new_labels = 3
    policy.display_threshold = 0.05
    policy.save()

    # no model yet: the pool is ranked by diversity alone
    rank_dataset.delay(dataset.pk)
    cold = wait_for(lambda: Ranking.objects.filter(dataset=dataset).first(), 60, "a cold-start ranking", celery_worker)
    assert cold.strategy == "cold_start" and cold.model_version is None
    assert not cold.entries.filter(image__split=Split.VAL).exists()

    # the first run trains from scratch and is promoted; proposals and a model ranking follow
    first_run = request_training_run(dataset, RunTrigger.MANUAL)
    run = wait_for(lambda: finished(first_run.pk), RUN_TIMEOUT, "the first run", celery_worker)
    assert run.state == RunState.SUCCEEDED, run.error
    v1 = ModelVersion.objects.get(training_run=run)
    assert v1.status == ModelStatus.PRODUCTION and v1.metrics["map50"] is not None
    ranked_v1 = wait_for(lambda: Ranking.objects.filter(model_version=v1).first(), 120, "a ranking by v1", celery_worker)
    assert ranked_v1.strategy == "ranked_batch" and ranked_v1.image_count == 10
    assert dataset.images.filter(predictions__model_version=v1).count() == 18  # train + pool, never val

    # images added now get proposals from the production version
    extra = tmp_path / "extra"
    generate_dataset(extra, 3, size=128, seed=99)
    import_coco(extra / "annotations.json", extra / "images", dataset.name, split=Split.POOL, images_only=True)
    new_images = dataset.images.filter(file_name__startswith="phantom_99_")
    wait_for(lambda: all(i.predictions.filter(model_version=v1).exists() for i in new_images), 120,
             "predictions for new images", celery_worker)
    proposals = Annotation.objects.filter(image__in=new_images, source=AnnotationSource.MODEL, is_deleted=False)
    above = [box for prediction in Prediction.objects.filter(model_version=v1, image__in=new_images)
             for box in prediction.boxes if box["score"] >= policy.display_threshold]
    assert above, "v1 found nothing above the display threshold in the new images: nothing to check"
    # every box above the threshold is a proposal (clipping onto the image may drop a sliver)
    assert 0 < proposals.count() <= len(above)
    assert set(proposals.values_list("serving_version", flat=True)) == {serving_version(dataset)}

    # readers accept three images: the "3 new labels" rule starts the next run
    categories = {c.coco_id: c for c in dataset.categories.all()}
    review_with_ground_truth(dataset.images.filter(split=Split.POOL)[:3], ground_truth(tmp_path), categories)
    sweep_training.delay()
    second = wait_for(lambda: TrainingRun.objects.filter(dataset=dataset, trigger=RunTrigger.THRESHOLD).first(),
                      60, "a threshold run", celery_worker)
    run = wait_for(lambda: finished(second.pk), RUN_TIMEOUT, "the threshold run", celery_worker)
    assert run.state == RunState.SUCCEEDED, run.error
    assert run.base_version == v1 and run.snapshot_images == 11
    v2 = ModelVersion.objects.get(training_run=run)
    assert v2.parent == v1 and v2.gate_passed and v2.status == ModelStatus.PRODUCTION
    wait_for(lambda: Ranking.objects.filter(model_version=v2).exists(), 120, "a ranking by v2", celery_worker)

    # rollback restores v1, under a new serving version string, and re-ranks with it
    rankings_before = Ranking.objects.filter(model_version=v1).count()
    rollback(dataset, reason="e2e")
    assert production_version(dataset) == v1 and serving_version(dataset) == f"{v1.name}.p3"
    wait_for(lambda: Ranking.objects.filter(model_version=v1).count() > rankings_before, 120,
             "a ranking by v1 after the rollback", celery_worker)


def test_a_worker_killed_mid_run_loses_nothing(celery_worker, tmp_path, media_root, settings):
    dataset = phantom_dataset(tmp_path, iterations=100000)
    production = random_weights_version(dataset, status=ModelStatus.PRODUCTION)
    annotations = sorted(Annotation.objects.values_list("pk", "x", "y", "w", "h", "version", "is_deleted"))
    run = request_training_run(dataset, RunTrigger.MANUAL)
    wait_for(lambda: TrainingRun.objects.filter(pk=run.pk, iteration__gte=2).exists(), RUN_TIMEOUT,
             "the run to be training", celery_worker)

    celery_worker.kill()
    settings.TRAINING_HEARTBEAT_TIMEOUT = 5
    wait_for(lambda: sweep_stale_runs(), 30, "the sweeper to fail the run")

    run.refresh_from_db()
    assert run.state == RunState.FAILED and "no heartbeat" in run.error
    assert sorted(Annotation.objects.values_list("pk", "x", "y", "w", "h", "version", "is_deleted")) == annotations
    assert production_version(dataset) == production
    assert list(ModelVersion.objects.all()) == [production]
    stored_weights = sorted(p.relative_to(media_root).as_posix() for p in (media_root / "models").rglob("*") if p.is_file())
    assert stored_weights == [production.weights.name]  # no partial or unregistered weights

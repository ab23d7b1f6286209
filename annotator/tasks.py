"""Celery tasks of the learning loop. Arguments are ids only; each task re-reads its rows.

Queues: ``training`` (training runs) and ``inference`` (proposals, ranking) take the
long work, so GPU machines can run workers for just those; ``default`` takes the beat's
bookkeeping. Every task is safe to run twice (acks_late redelivers after a lost worker):
claims are conditional updates and writes are idempotent.

The ``enqueue_*`` functions are what services call; they publish straight away, so call
them after the rows they name are committed (``transaction.on_commit``).
"""

from __future__ import annotations

import logging
import traceback

from celery import chain, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.db import transaction

from annotator.models import (
    Dataset,
    Image,
    ModelStatus,
    ModelVersion,
    Prediction,
    RunState,
    RunTrigger,
    TrainingRun,
)

log = logging.getLogger(__name__)
PREDICT_BATCH = 8
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}

_engines: dict[tuple[int, str], object] = {}


def engine_for(version: ModelVersion):
    """The version's engine, loaded once per worker process (keyed by weights digest)."""
    from annotator.services.media import local_copy
    from ml_backend.registry import load_engine

    key = (version.pk, version.weights_sha256)
    if key not in _engines:
        _engines.clear()  # one model in memory at a time
        _engines[key] = load_engine(local_copy(version.weights.name))
    return _engines[key]


# -- publishing --------------------------------------------------------------------------


def enqueue_training(run_id: int) -> None:
    train_model.apply_async(args=[run_id], retry_policy=PUBLISH_RETRY)


def enqueue_after_promotion(dataset_id: int, version_id: int) -> None:
    chain(propose_images.si(dataset_id, version_id), rank_dataset.si(dataset_id, None, version_id)).apply_async()


def enqueue_proposals_for_new_images(dataset_id: int, image_ids: list[int]) -> None:
    """New images get proposals from the production version, if there is one."""
    version = ModelVersion.objects.filter(dataset_id=dataset_id, status=ModelStatus.PRODUCTION).first()
    if version is not None and image_ids:
        transaction.on_commit(lambda: propose_images.delay(dataset_id, version.pk, image_ids))


# -- tasks -------------------------------------------------------------------------------


@shared_task(bind=True, name="annotator.tasks.train_model", max_retries=5)
def train_model(self, run_id: int) -> str:
    """Run one training run end to end; errors are stored on the run, never lost."""
    from annotator.services.run_execution import execute_training_run
    from annotator.services.training import claim_run, finish_run
    from ml_backend.contract import TrainingCancelled

    if not claim_run(run_id, self.request.id or ""):
        if not TrainingRun.objects.filter(pk=run_id).exists():  # not committed yet
            raise self.retry(countdown=2)
        return f"run {run_id} is not queued: nothing to do"
    try:
        version = execute_training_run(run_id)
    except TrainingCancelled:
        finish_run(run_id, RunState.CANCELLED, "cancelled by an admin")
        return f"run {run_id} cancelled"
    except SoftTimeLimitExceeded:
        finish_run(run_id, RunState.FAILED, "the task's time limit was reached")
        return f"run {run_id} timed out"
    except Exception as exc:  # noqa: BLE001 - stored on the row for the dashboard
        log.exception("training run %s failed", run_id)
        finish_run(run_id, RunState.FAILED, f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}")
        return f"run {run_id} failed"
    return f"run {run_id} produced {version.name}"


@shared_task(name="annotator.tasks.propose_images")
def propose_images(dataset_id: int, version_id: int, image_ids: list[int] | None = None) -> int:
    """Predict the sampleable images (all, or ``image_ids``) with ``version``; store the
    predictions and refresh the proposals of images nobody is reading. Images already
    predicted by this version are skipped, so a redelivered task resumes."""
    from annotator.services.media import model_pixels
    from annotator.services.predictions import replace_proposals, store_prediction
    from annotator.services.versions import policy_for, serving_version
    from ml_backend.engines import predict_hflip

    version = ModelVersion.objects.select_related("dataset").get(pk=version_id)
    policy = policy_for(version.dataset)
    serving = serving_version(version.dataset) or version.name
    images = Image.objects.filter(dataset_id=dataset_id).sampleable().order_by("pk")
    if image_ids is not None:
        images = images.filter(pk__in=image_ids)
    done = set(Prediction.objects.filter(model_version=version).values_list("image_id", flat=True))
    engine = engine_for(version)
    todo = [image for image in images if image.pk not in done]
    for start in range(0, len(todo), PREDICT_BATCH):
        batch = todo[start : start + PREDICT_BATCH]
        pixels = [model_pixels(image) for image in batch]
        found = engine.predict(pixels)
        flipped = predict_hflip(engine, pixels) if policy.ranking_strategy == "localization" else [None] * len(batch)
        for image, detections, mirrored in zip(batch, found, flipped, strict=True):
            store_prediction(image, version, detections, mirrored)
    proposed = 0
    for prediction in Prediction.objects.filter(model_version=version, image__in=images).select_related("image"):
        proposed += replace_proposals(prediction.image, prediction, policy.display_threshold, serving)
    return proposed


@shared_task(name="annotator.tasks.rank_dataset")
def rank_dataset(dataset_id: int, strategy: str | None = None, version_id: int | None = None) -> int:
    """Rank the pool with ``strategy`` (default: the dataset's policy) by ``version``
    (default: production; cold start when there is none)."""
    from annotator.services.ranking import rank_pool
    from annotator.services.versions import policy_for, production_version

    dataset = Dataset.objects.get(pk=dataset_id)
    version = ModelVersion.objects.get(pk=version_id) if version_id else production_version(dataset)
    strategy = strategy or (policy_for(dataset).ranking_strategy if version else "cold_start")
    return rank_pool(dataset, strategy, version).pk


@shared_task(name="annotator.tasks.scheduled_training")
def scheduled_training(dataset_id: int) -> str:
    """Entry point of admins' cron / interval schedules (django-celery-beat)."""
    from annotator.services.training import (
        BrokerUnavailable,
        RunAlreadyActive,
        request_training_run,
    )

    try:
        run = request_training_run(Dataset.objects.get(pk=dataset_id), RunTrigger.SCHEDULE)
    except RunAlreadyActive as exc:
        return f"skipped: {exc}"
    except BrokerUnavailable as exc:
        return f"skipped: {exc}"
    return f"queued run {run.pk}"


@shared_task(name="annotator.tasks.sweep_training")
def sweep_training() -> dict:
    """Beat, every minute: fail runs whose worker died, and queue the runs that the
    per-dataset "N new labels" rule makes due (never two at once per dataset)."""
    from annotator.services.training import request_runs_over_threshold, sweep_stale_runs

    return {
        "failed_stale": sweep_stale_runs(),
        "queued": [run.pk for run in request_runs_over_threshold()],
    }

"""Publishing the learning loop's work to the workers, by task name.

Services call these; they never import the task modules (``learning/tasks.py`` imports
services, not the other way round). Each name is routed to its queue by
``CELERY_TASK_ROUTES`` (``training`` or ``inference``). Publish only what is committed:
call these from ``transaction.on_commit`` or after the rows they name exist.
"""

from __future__ import annotations

from celery import chain

from config.celery import app

TRAIN = "annotator.tasks.train_model"
PROPOSE = "annotator.tasks.propose_images"
RANK = "annotator.tasks.rank_dataset"
ANALYZE = "annotator.tasks.analyze_upload"
SCHEDULED = "annotator.tasks.scheduled_training"  # stored in beat schedules
SWEEP = "annotator.tasks.sweep_training"
# A broker that does not answer is given up on quickly, so a request can say so.
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}


def publish_training(run_id: int, queue: str = "training") -> None:
    """To the policy's training queue, so a GPU worker elsewhere can take the runs of
    datasets whose policy names its queue."""
    app.send_task(TRAIN, args=[run_id], queue=queue, retry_policy=PUBLISH_RETRY)


def publish_proposals(dataset_id: int, version_id: int, image_ids: list[int] | None = None) -> None:
    app.send_task(PROPOSE, args=[dataset_id, version_id, image_ids])


def publish_ranking(dataset_id: int, strategy: str | None = None, version_id: int | None = None) -> None:
    app.send_task(RANK, args=[dataset_id, strategy, version_id])


def publish_after_promotion(dataset_id: int, version_id: int) -> None:
    """Re-predict the pool with the new version, then re-rank it."""
    chain(
        app.signature(PROPOSE, args=(dataset_id, version_id), immutable=True),
        app.signature(RANK, args=(dataset_id, None, version_id), immutable=True),
    ).apply_async()


def publish_analysis(quick_read_id: int) -> None:
    app.send_task(ANALYZE, args=[quick_read_id])

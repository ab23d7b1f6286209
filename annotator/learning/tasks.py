"""Celery tasks of the learning loop: thin adapters, one service call each.

Arguments are ids only; each service re-reads its rows. Queues: ``training`` (runs) and
``inference`` (proposals, ranking, analysis) take the long work, so GPU machines can run
workers for just those; ``default`` takes the beat's bookkeeping. Every task is safe to
run twice (acks_late redelivers after a lost worker): claims are conditional updates and
writes are idempotent. Services publish these by name (``learning/dispatch.py``); the
names are stable because beat schedules store them.
"""

from __future__ import annotations

from celery import shared_task

from annotator.learning import dispatch


@shared_task(bind=True, name=dispatch.TRAIN, max_retries=5)
def train_model(self, run_id: int) -> str:
    from annotator.learning.services.execution import carry_out_run
    from annotator.learning.services.runs import RunNotVisible

    try:
        return carry_out_run(run_id, self.request.id or "")
    except RunNotVisible as exc:
        raise self.retry(countdown=2) from exc


@shared_task(name=dispatch.PROPOSE)
def propose_images(dataset_id: int, version_id: int, image_ids: list[int] | None = None) -> int:
    from annotator.learning.services.predictions import propose_images as propose

    return propose(dataset_id, version_id, image_ids)


@shared_task(name=dispatch.RANK)
def rank_dataset(dataset_id: int, strategy: str | None = None, version_id: int | None = None) -> int:
    from annotator.learning.services.ranking import rank_dataset as rank

    return rank(dataset_id, strategy, version_id).pk


@shared_task(name=dispatch.ANALYZE, acks_late=True, reject_on_worker_lost=True, soft_time_limit=300, time_limit=330)
def analyze_upload(quick_read_id: int) -> str:
    from annotator.learning.services.analysis import analyze_upload as analyze

    return analyze(quick_read_id)


@shared_task(name=dispatch.SCHEDULED)
def scheduled_training(dataset_id: int) -> str:
    """Entry point of admins' cron / interval schedules (django-celery-beat)."""
    from annotator.learning.services.runs import request_scheduled_run

    return request_scheduled_run(dataset_id)


@shared_task(name=dispatch.SWEEP)
def sweep_training() -> dict:
    from annotator.learning.services.runs import sweep

    return sweep()

"""Training runs: request, claim, progress, cancel, finish, and the sweeper.

State machine: queued -> running -> succeeded | failed | cancelled (queued may also go
straight to failed or cancelled). Only one queued-or-running run per dataset: the
partial unique index ``one_active_training_run_per_dataset`` makes the insert itself the
claim, on PostgreSQL and SQLite alike, so two "train now" clicks, a schedule and the
label threshold can never start two runs. A worker claims a queued run with a
conditional update, so a task delivered twice trains once.
"""

from __future__ import annotations

import socket
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotator.models import (
    ACTIVE_RUN_STATES,
    Dataset,
    Image,
    RunState,
    RunTrigger,
    TrainingRun,
)
from annotator.services.versions import policy_for, production_version

LOSS_HISTORY_LIMIT = 500  # points kept for the dashboard's curve


class RunAlreadyActive(RuntimeError):
    """The dataset already has a queued or running training run."""

    def __init__(self, run: TrainingRun | None):
        self.run = run
        super().__init__(
            f"training run {run.pk} is already {run.state} for this dataset" if run else
            "a training run is already queued or running for this dataset"
        )


class BrokerUnavailable(RuntimeError):
    """The task could not be handed to the broker; nothing was queued."""


def labeled_count(dataset: Dataset) -> int:
    """Labeled images a training run could use (validation and test excluded)."""
    return Image.objects.filter(dataset=dataset).sampleable().labeled().count()


def request_training_run(dataset: Dataset, trigger: str, actor=None) -> TrainingRun:
    """Queue a training run from the production version (or from scratch).

    Raises ``RunAlreadyActive`` when one is queued or running, and ``BrokerUnavailable``
    when the broker refuses the task: the run row is then removed again, so no phantom
    queued run is left behind.
    """
    from annotator.tasks import enqueue_training

    try:
        with transaction.atomic():
            run = TrainingRun.objects.create(
                dataset=dataset,
                trigger=trigger,
                requested_by=actor,
                base_version=production_version(dataset),
                labeled_at_start=labeled_count(dataset),
                total_iterations=policy_for(dataset).iterations,
            )
    except IntegrityError:
        raise RunAlreadyActive(active_run(dataset)) from None
    try:
        enqueue_training(run.pk)
    except Exception as exc:  # kombu raises several kinds for an unreachable broker
        TrainingRun.objects.filter(pk=run.pk, state=RunState.QUEUED).delete()
        raise BrokerUnavailable(f"the task broker is unreachable, nothing was queued: {exc}") from exc
    return run


def active_run(dataset: Dataset) -> TrainingRun | None:
    return TrainingRun.objects.filter(dataset=dataset, state__in=ACTIVE_RUN_STATES).first()


def claim_run(run_id: int, task_id: str = "") -> bool:
    """Move a queued run to running for this worker. False when someone else has it or
    it is finished (a duplicate delivery)."""
    now = timezone.now()
    return bool(
        TrainingRun.objects.filter(pk=run_id, state=RunState.QUEUED).update(
            state=RunState.RUNNING,
            started_at=now,
            heartbeat_at=now,
            worker_host=socket.gethostname(),
            task_id=task_id,
        )
    )


def record_progress(run_id: int, iteration: int, total: int, losses: dict[str, float]) -> bool:
    """Store progress and a heartbeat; returns True when cancel was requested."""
    run = TrainingRun.objects.only("loss_history", "cancel_requested").get(pk=run_id)
    history = run.loss_history + [{"iteration": iteration, **losses}]
    if len(history) > LOSS_HISTORY_LIMIT:
        history = history[::2]
    TrainingRun.objects.filter(pk=run_id, state=RunState.RUNNING).update(
        iteration=iteration, total_iterations=total, loss_history=history, heartbeat_at=timezone.now()
    )
    return run.cancel_requested


def finish_run(run_id: int, state: str, error: str = "") -> None:
    TrainingRun.objects.filter(pk=run_id, state__in=ACTIVE_RUN_STATES).update(
        state=state, error=error[-10000:], finished_at=timezone.now()
    )


def cancel_run(run: TrainingRun) -> TrainingRun:
    """Cancel a queued run at once; ask a running one to stop at its next iteration."""
    TrainingRun.objects.filter(pk=run.pk, state=RunState.QUEUED).update(
        state=RunState.CANCELLED, finished_at=timezone.now(), error="cancelled before it started"
    )
    TrainingRun.objects.filter(pk=run.pk, state=RunState.RUNNING).update(cancel_requested=True)
    run.refresh_from_db()
    return run


def sweep_stale_runs(now=None) -> list[int]:
    """Fail running runs whose worker stopped sending heartbeats (killed, machine lost),
    so nothing stays running forever. Returns the ids it failed."""
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.TRAINING_HEARTBEAT_TIMEOUT)
    stale = list(
        TrainingRun.objects.filter(state=RunState.RUNNING, heartbeat_at__lt=stale_before).values_list("pk", flat=True)
    )
    for run_id in stale:
        finish_run(
            run_id,
            RunState.FAILED,
            f"the worker stopped reporting (no heartbeat for {settings.TRAINING_HEARTBEAT_TIMEOUT} s): "
            "it was killed or lost; its partial weights were never registered",
        )
    return stale


def new_labels_since_last_run(dataset: Dataset) -> int:
    last = TrainingRun.objects.filter(dataset=dataset).order_by("-created_at", "-id").first()
    return labeled_count(dataset) - (last.labeled_at_start if last else 0)


def request_runs_over_threshold() -> list[TrainingRun]:
    """The per-dataset rule: queue a run once N new images are labeled since the last."""
    started = []
    for dataset in Dataset.objects.filter(training_policy__retrain_after_new_labels__isnull=False):
        threshold = dataset.training_policy.retrain_after_new_labels
        if active_run(dataset) is None and new_labels_since_last_run(dataset) >= threshold:
            try:
                started.append(request_training_run(dataset, RunTrigger.THRESHOLD))
            except RunAlreadyActive:
                continue
    return started


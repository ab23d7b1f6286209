"""Training runs: every change of a run's state is written here, and only here.

request (queued), claim (running), progress and heartbeat, succeed, fail or cancel (from
the error that stopped it), cancel on request, and the sweeper for lost workers.

State machine: queued -> running -> succeeded | failed | cancelled (queued may also go
straight to failed or cancelled). Only one queued-or-running run per dataset: the
partial unique index ``one_active_training_run_per_dataset`` makes the insert itself the
claim, on PostgreSQL and SQLite alike, so two "train now" clicks, a schedule and the
label threshold can never start two runs. A worker claims a queued run with a
conditional update, so a task delivered twice trains once.
"""

from __future__ import annotations

import logging
import socket
import traceback
from datetime import timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotator.datasets.models import Dataset
from annotator.errors import Conflict, Unavailable
from annotator.learning.dispatch import publish_training
from annotator.learning.models import ACTIVE_RUN_STATES, RunState, RunTrigger, TrainingRun
from annotator.learning.selectors import (
    active_run,
    labeled_count,
    new_labels_since_last_run,
    policy_of,
    production_version,
)
from annotator.learning.services.inference import recover_inference
from ml_backend.contract import TrainingCancelled

log = logging.getLogger(__name__)

LOSS_HISTORY_LIMIT = 500  # points kept for the dashboard's curve


class RunAlreadyActive(Conflict):
    """The dataset already has a queued or running training run."""

    def __init__(self, run: TrainingRun | None):
        self.run = run
        super().__init__(
            f"training run {run.pk} is already {run.state} for this dataset" if run else
            "a training run is already queued or running for this dataset"
        )

    def details(self) -> dict:
        return {"run": self.run.pk if self.run else None}


class RunNotVisible(LookupError):
    """A delivered run id has no row yet: its request has not committed. Retry shortly."""


class BrokerUnavailable(Unavailable):
    """The task could not be handed to the broker; nothing was queued."""




def request_training_run(dataset: Dataset, trigger: str, actor=None) -> TrainingRun:
    """Queue a training run from the production version (or from scratch).

    Raises ``RunAlreadyActive`` when one is queued or running, and ``BrokerUnavailable``
    when the broker refuses the task: the run row is then removed again, so no phantom
    queued run is left behind.
    """
    try:
        with transaction.atomic():
            run = TrainingRun.objects.create(
                dataset=dataset,
                trigger=trigger,
                requested_by=actor,
                base_version=production_version(dataset),
                labeled_at_start=labeled_count(dataset),
                total_iterations=policy_of(dataset).iterations,
            )
    except IntegrityError:
        raise RunAlreadyActive(active_run(dataset)) from None
    try:
        publish_training(run.pk, policy_of(dataset).training_queue)
    except Exception as exc:  # kombu raises several kinds for an unreachable broker
        TrainingRun.objects.filter(pk=run.pk, state=RunState.QUEUED).delete()
        raise BrokerUnavailable(f"the task broker is unreachable, nothing was queued: {exc}") from exc
    return run




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


def mark_succeeded(run_id: int, *, stop_reason: str = "", device: str = "") -> None:
    """The run trained, was evaluated and registered; call it in the transaction that
    applies the gate, so nobody sees a succeeded run whose passing version is not yet
    promoted."""
    TrainingRun.objects.filter(pk=run_id, state=RunState.RUNNING).update(stop_reason=stop_reason or "", device=device or "")
    finish_run(run_id, RunState.SUCCEEDED)


def end_run_with(run_id: int, error: BaseException) -> str:
    """Finish a run that ``error`` stopped: cancelled when an admin asked for it, failed
    otherwise (the time limit, or anything else with its traceback, for the dashboard).
    Returns the state it was given."""
    if isinstance(error, TrainingCancelled):
        finish_run(run_id, RunState.CANCELLED, "cancelled by an admin")
        return RunState.CANCELLED
    if isinstance(error, SoftTimeLimitExceeded):
        finish_run(run_id, RunState.FAILED, "the task's time limit was reached")
        return RunState.FAILED
    log.error("training run %s failed", run_id, exc_info=error)
    trace = "".join(traceback.format_exception(error))
    finish_run(run_id, RunState.FAILED, f"{type(error).__name__}: {error}\n\n{trace}")
    return RunState.FAILED


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




def request_runs_over_threshold() -> list[TrainingRun]:
    """The per-dataset rule: queue a run once N new images are labeled since the last."""
    started = []
    for dataset in Dataset.objects.filter(learning_policy__retrain_after_new_labels__isnull=False):
        threshold = dataset.learning_policy.retrain_after_new_labels
        if active_run(dataset) is None and new_labels_since_last_run(dataset) >= threshold:
            try:
                started.append(request_training_run(dataset, RunTrigger.THRESHOLD))
            except RunAlreadyActive:
                continue
    return started


def request_scheduled_run(dataset_id: int) -> str:
    """What an admin's cron or interval schedule does: queue a run unless one is active."""
    try:
        run = request_training_run(Dataset.objects.get(pk=dataset_id), RunTrigger.SCHEDULE)
    except (RunAlreadyActive, BrokerUnavailable) as exc:
        return f"skipped: {exc}"
    return f"queued run {run.pk}"


def sweep() -> dict:
    """The beat's minute: fail runs whose worker died, queue the runs that the
    per-dataset "N new labels" rule makes due (never two at once per dataset), and ask
    again for production versions' lost proposals and rankings."""
    return {"failed_stale": sweep_stale_runs(), "queued": [run.pk for run in request_runs_over_threshold()],
            "inference_requested": recover_inference()}

"""What the training dashboard shows, as one JSON-able dict (read-only queries)."""

from __future__ import annotations

import json

from django_celery_beat.models import PeriodicTask

from annotator.models import ACTIVE_RUN_STATES, Dataset, ModelVersion, TrainingRun
from annotator.services.ranking import pool_images
from annotator.services.training import labeled_count, new_labels_since_last_run
from annotator.services.versions import (
    gate_metric_value,
    policy_for,
    production_version,
    serving_version,
)

RECENT_RUNS = 20


def run_summary(run: TrainingRun) -> dict:
    return {
        "id": run.pk,
        "state": run.state,
        "trigger": run.trigger,
        "requested_by": run.requested_by.get_username() if run.requested_by else None,
        "base_version": run.base_version.name if run.base_version else None,
        "produced_version": getattr(getattr(run, "produced_version", None), "name", None),
        "iteration": run.iteration,
        "total_iterations": run.total_iterations,
        "progress": round(run.progress, 4),
        "losses": run.loss_history,
        "snapshot": {"images": run.snapshot_images, "boxes": run.snapshot_boxes, "sha256": run.snapshot_sha256},
        "worker_host": run.worker_host,
        "error": run.error,
        "cancel_requested": run.cancel_requested,
        "created_at": run.created_at.isoformat(),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "active": run.state in ACTIVE_RUN_STATES,
    }


def version_summary(version: ModelVersion) -> dict:
    return {
        "id": version.pk,
        "name": version.name,
        "status": version.status,
        "engine": version.engine,
        "architecture": version.config.get("architecture"),
        "parent": version.parent.name if version.parent else None,
        "training_run": version.training_run_id,
        "gate_passed": version.gate_passed,
        "gate_reason": version.gate_reason,
        "map50": gate_metric_value(version.metrics, "map50"),
        "map": gate_metric_value(version.metrics, "map"),
        "froc_2": gate_metric_value(version.metrics, "froc_2"),
        "image_f1": gate_metric_value(version.metrics, "image_f1"),
        "created_at": version.created_at.isoformat(),
    }


def schedules_for(dataset: Dataset) -> list[dict]:
    schedules = []
    for task in PeriodicTask.objects.filter(task="annotator.tasks.scheduled_training").select_related("crontab", "interval"):
        if json.loads(task.args or "[]") == [dataset.pk]:
            schedules.append({"id": task.pk, "name": task.name, "enabled": task.enabled,
                              "schedule": str(task.crontab or task.interval)})
    return schedules


def dashboard_state(dataset: Dataset) -> dict:
    policy = policy_for(dataset)
    production = production_version(dataset)
    runs = dataset.training_runs.select_related("requested_by", "base_version", "produced_version")[:RECENT_RUNS]
    versions = dataset.model_versions.select_related("parent").order_by("created_at", "id")
    return {
        "dataset": {"id": dataset.pk, "name": dataset.name},
        "production": version_summary(production) if production else None,
        "serving_version": serving_version(dataset),
        "review_queue": pool_images(dataset).count(),
        "labeled": labeled_count(dataset),
        "labeled_since_last_run": new_labels_since_last_run(dataset),
        "policy": {
            "engine": policy.engine, "iterations": policy.iterations, "gate_metric": policy.gate_metric,
            "gate_margin": policy.gate_margin, "retrain_after_new_labels": policy.retrain_after_new_labels,
            "ranking_strategy": policy.ranking_strategy,
        },
        "runs": [run_summary(run) for run in runs],
        "versions": [version_summary(version) for version in versions],
        "schedules": schedules_for(dataset),
    }

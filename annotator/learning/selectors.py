"""Reads of the learning loop: a dataset's policy, production and serving version, its
schedules, and what the training dashboard shows. Nothing here writes."""

from __future__ import annotations

import json

from django_celery_beat.models import PeriodicTask

from annotator.datasets.access import visible_datasets
from annotator.datasets.models import Dataset, Image, ReviewStatus
from annotator.learning import dispatch
from annotator.learning.models import (
    ACTIVE_RUN_STATES,
    GateMetric,
    LearningPolicy,
    ModelStatus,
    ModelVersion,
    Promotion,
    TrainingRun,
)


def policy_of(dataset: Dataset) -> LearningPolicy:
    """The dataset's policy, or the defaults (unsaved) when it has none yet."""
    return LearningPolicy.objects.filter(dataset=dataset).first() or LearningPolicy(dataset=dataset)


def production_version(dataset: Dataset | int) -> ModelVersion | None:
    dataset_id = dataset.pk if isinstance(dataset, Dataset) else dataset
    return ModelVersion.objects.filter(dataset_id=dataset_id, status=ModelStatus.PRODUCTION).first()


def serving_version(dataset: Dataset) -> str | None:
    """The version string every client sees; it changes on every promotion."""
    latest = (
        Promotion.objects.filter(dataset=dataset).select_related("model_version").order_by("-serial").first()
    )
    return latest.serving_version if latest else None


def rollback_target(dataset: Dataset) -> ModelVersion | None:
    """The version a rollback without a target would promote: the one in production before
    the current one (None when there is none)."""
    latest = Promotion.objects.filter(dataset=dataset).select_related("previous_version").order_by("-serial").first()
    return latest.previous_version if latest else None


def labeled_count(dataset: Dataset) -> int:
    """Labeled images a training run could use (validation and test excluded)."""
    return Image.objects.filter(dataset=dataset).sampleable().labeled().count()


def active_run(dataset: Dataset) -> TrainingRun | None:
    return TrainingRun.objects.filter(dataset=dataset, state__in=ACTIVE_RUN_STATES).first()


def new_labels_since_last_run(dataset: Dataset) -> int:
    last = TrainingRun.objects.filter(dataset=dataset).order_by("-created_at", "-id").first()
    return labeled_count(dataset) - (last.labeled_at_start if last else 0)


def pool_images(dataset: Dataset):
    """Images still to be read, in id order: waiting ones and ones open in a reader's hands
    (a reader may leave without finishing); never validation or test images."""
    status = (*ReviewStatus.waiting(), ReviewStatus.IN_REVIEW)
    return Image.objects.filter(dataset=dataset, status__in=status).sampleable().order_by("pk")


def gate_metric_value(metrics: dict | None, metric: str) -> float | None:
    """Read a gate metric out of the ML backend's evaluation dict."""
    if not metrics:
        return None
    if metric == GateMetric.FROC2:
        froc = metrics.get("froc") or {}
        rates = [float(rate) for rate in froc.get("fp_per_image", [])]
        value = froc["sensitivity"][rates.index(2.0)] if 2.0 in rates else None
    elif metric == GateMetric.IMAGE_F1:
        value = (metrics.get("image_level") or {}).get("f1")
    else:
        value = metrics.get(metric)
    return float(value) if value is not None else None


def schedule_dataset_id(task) -> int | None:
    """The dataset a django-celery-beat ``PeriodicTask`` works on: its kwargs'
    ``dataset_id`` (or ``dataset``), or the first argument of the retraining task
    (``dispatch.SCHEDULED``); None when it names none."""
    try:
        kwargs = json.loads(task.kwargs or "{}")
        args = json.loads(task.args or "[]")
    except ValueError:
        return None
    value = kwargs.get("dataset_id", kwargs.get("dataset")) if isinstance(kwargs, dict) else None
    if value is None and task.task == dispatch.SCHEDULED and isinstance(args, list) and args:
        value = args[0]
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def visible_schedules(user) -> list:
    """The periodic tasks of the datasets the user can see, in id order."""
    dataset_ids = set(visible_datasets(user).values_list("pk", flat=True))
    return [task for task in PeriodicTask.objects.order_by("id") if schedule_dataset_id(task) in dataset_ids]

"""The model registry: versions, the promotion gate, promotion and rollback.

Every change of the production version is one ``Promotion`` row (append-only) written in
the same transaction as the status change, under a lock on the dataset row, so two
admins promoting at once cannot leave two production versions (the partial unique index
``one_production_version_per_dataset`` would refuse it anyway). After the commit the
pool is re-predicted and re-ranked with the new version.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.db.models import Max

from annotator.models import (
    Dataset,
    GateMetric,
    ModelStatus,
    ModelVersion,
    Promotion,
    PromotionKind,
    TrainingPolicy,
)


class PromotionError(ValueError):
    """A promotion or rollback that cannot be done; the message says why."""


def policy_for(dataset: Dataset) -> TrainingPolicy:
    policy, _ = TrainingPolicy.objects.get_or_create(dataset=dataset)
    return policy


def production_version(dataset: Dataset) -> ModelVersion | None:
    return ModelVersion.objects.filter(dataset=dataset, status=ModelStatus.PRODUCTION).first()


def serving_version(dataset: Dataset) -> str | None:
    """The version string every client sees; it changes on every promotion."""
    latest = (
        Promotion.objects.filter(dataset=dataset).select_related("model_version").order_by("-serial").first()
    )
    return latest.serving_version if latest else None


def next_version_name(dataset: Dataset, engine_config: dict) -> str:
    architecture = str(engine_config.get("architecture") or "frcnn").replace("_", "-")
    count = ModelVersion.objects.filter(dataset=dataset).count() + 1
    return f"{architecture}-{count:04d}"


def gate_metric_value(metrics: dict | None, metric: str) -> float | None:
    """Read the gate's metric out of the ML backend's evaluation dict."""
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


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reason: str


def evaluate_gate(candidate: ModelVersion, production: ModelVersion | None, policy: TrainingPolicy) -> GateDecision:
    """Pass when the candidate's metric is not lower than production's by more than the
    policy's margin. With no production version any evaluated candidate passes."""
    metric = policy.gate_metric
    value = gate_metric_value(candidate.metrics, metric)
    if value is None:
        return GateDecision(False, f"the candidate has no {metric} on the validation split")
    if production is None:
        return GateDecision(True, f"{metric} {value:.4f}; no production version to compare with")
    reference = gate_metric_value(production.metrics, metric)
    if reference is None:
        return GateDecision(True, f"{metric} {value:.4f}; production {production.name} has no {metric}")
    floor = reference - policy.gate_margin
    verdict = "passes" if value >= floor else "fails"
    return GateDecision(
        value >= floor,
        f"{metric} {value:.4f} vs production {production.name} {reference:.4f} "
        f"(margin {policy.gate_margin}): {verdict}",
    )


def promote_version(version: ModelVersion, *, kind: str, actor=None, reason: str = "") -> Promotion:
    """Make ``version`` the production version of its dataset (archiving the previous
    one) and log it. Locks the dataset row. Re-prediction is queued after the commit."""
    from annotator.tasks import enqueue_after_promotion

    with transaction.atomic():
        Dataset.objects.select_for_update().get(pk=version.dataset_id)
        version.refresh_from_db()
        if version.status == ModelStatus.PRODUCTION:
            raise PromotionError(f"{version.name} is already the production version")
        previous = production_version(version.dataset)
        if previous is not None:
            previous.status = ModelStatus.ARCHIVED
            previous.save(update_fields=["status"])
        version.status = ModelStatus.PRODUCTION
        version.save(update_fields=["status"])
        serial = (Promotion.objects.filter(dataset_id=version.dataset_id).aggregate(top=Max("serial"))["top"] or 0) + 1
        promotion = Promotion.objects.create(
            dataset_id=version.dataset_id,
            model_version=version,
            previous_version=previous,
            serial=serial,
            kind=kind,
            actor=actor,
            reason=reason,
        )
        transaction.on_commit(lambda: enqueue_after_promotion(version.dataset_id, version.pk))
    return promotion


def rollback(dataset: Dataset, *, actor=None, to: ModelVersion | None = None, reason: str = "") -> Promotion:
    """Re-promote ``to``, or else the version that was in production before the current one."""
    if to is None:
        current = Promotion.objects.filter(dataset=dataset).order_by("-serial").first()
        if current is None or current.previous_version is None:
            raise PromotionError("there is no earlier production version to roll back to")
        to = current.previous_version
    if to.dataset_id != dataset.pk:
        raise PromotionError(f"{to.name} belongs to another dataset")
    return promote_version(to, kind=PromotionKind.ROLLBACK, actor=actor, reason=reason)

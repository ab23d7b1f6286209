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

from annotator.datasets.models import Dataset
from annotator.errors import Conflict
from annotator.learning.dispatch import publish_after_promotion
from annotator.learning.models import (
    LearningPolicy,
    ModelStatus,
    ModelVersion,
    Promotion,
    PromotionKind,
)
from annotator.learning.selectors import gate_metric_value, production_version, rollback_target
from annotator.learning.services.inference import mark_requested


class PromotionError(Conflict):
    """A promotion or rollback that cannot be done; the message says why."""








def next_version_name(dataset: Dataset, engine_config: dict) -> str:
    architecture = str(engine_config.get("architecture") or "frcnn").replace("_", "-")
    count = ModelVersion.objects.filter(dataset=dataset).count() + 1
    return f"{architecture}-{count:04d}"




@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reason: str


def evaluate_gate(candidate: ModelVersion, production: ModelVersion | None, policy: LearningPolicy) -> GateDecision:
    """Pass when the candidate's metric reaches the policy's floor and is not lower than
    production's by more than the policy's margin (with no production version, the floor
    alone decides: a first model is not promoted whatever it is worth)."""
    metric = policy.gate_metric
    value = gate_metric_value(candidate.metrics, metric)
    if value is None:
        return GateDecision(False, f"the candidate has no {metric} on the validation split")
    if value < policy.gate_floor:
        return GateDecision(False, f"{metric} {value:.4f} is below the policy's floor {policy.gate_floor}: fails")
    if production is None:
        return GateDecision(True, f"{metric} {value:.4f} reaches the floor {policy.gate_floor}; "
                                  "no production version to compare with")
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


def request_inference_after_promotion(version: ModelVersion) -> None:
    mark_requested(version.pk)  # the sweeper asks again if this is lost
    publish_after_promotion(version.dataset_id, version.pk)


def promote_version(version: ModelVersion, *, kind: str, actor=None, reason: str = "") -> Promotion:
    """Make ``version`` the production version of its dataset (archiving the previous
    one) and log it. Locks the dataset row. Re-prediction is queued after the commit."""
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
        transaction.on_commit(lambda: request_inference_after_promotion(version))
    return promotion


def rollback(dataset: Dataset, *, actor=None, to: ModelVersion | None = None, reason: str = "") -> Promotion:
    """Re-promote ``to``, or else the version that was in production before the current one."""
    if to is None:
        to = rollback_target(dataset)
        if to is None:
            raise PromotionError("there is no earlier production version to roll back to")
    if to.dataset_id != dataset.pk:
        raise PromotionError(f"{to.name} belongs to another dataset")
    return promote_version(to, kind=PromotionKind.ROLLBACK, actor=actor, reason=reason)

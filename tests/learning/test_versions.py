"""Model registry: the gate, promotion, rollback and the serving version string."""

import pytest

from annotator.learning.selectors import policy_of, production_version, serving_version
from annotator.learning.services.versions import (
    PromotionError,
    evaluate_gate,
    promote_version,
    rollback,
)
from annotator.models import LearningPolicy, ModelStatus, ModelVersion, Promotion, PromotionKind
from tests.factories import DatasetFactory

pytestmark = pytest.mark.django_db


def version(dataset, name, map50=None, froc2=None, status=ModelStatus.CANDIDATE):
    metrics = None if map50 is None else {
        "map50": map50, "map": map50 / 2,
        "froc": {"fp_per_image": [0.5, 1.0, 2.0, 4.0], "sensitivity": [0.1, 0.2, froc2 or 0.3, 0.4]},
        "image_level": {"f1": 0.5},
    }
    return ModelVersion.objects.create(dataset=dataset, name=name, engine="torchvision", weights=f"models/{name}.pt",
                                       weights_sha256="0" * 64, metrics=metrics, status=status)


@pytest.mark.parametrize(("candidate", "production", "margin", "passed"), [
    (0.60, 0.61, 0.01, True),   # within the margin
    (0.59, 0.61, 0.01, False),  # worse by more than the margin
    (0.70, 0.61, 0.00, True),
])
def test_gate_compares_with_production_within_the_margin(candidate, production, margin, passed):
    dataset = DatasetFactory()
    policy = LearningPolicy(dataset=dataset, gate_margin=margin)
    decision = evaluate_gate(version(dataset, "c", candidate), version(dataset, "p", production), policy)
    assert decision.passed is passed
    assert f"{candidate:.4f}" in decision.reason and f"{production:.4f}" in decision.reason


def test_a_first_version_must_reach_the_policys_floor():
    """The demo once promoted a model cut at 152 of 600 iterations (val mAP50 0.018)
    because there was no production version to compare with."""
    dataset = DatasetFactory()
    policy = LearningPolicy(dataset=dataset)
    weak = evaluate_gate(version(dataset, "weak", 0.018), None, policy)
    assert not weak.passed and "below the policy's floor 0.1" in weak.reason
    assert evaluate_gate(version(dataset, "good", 0.39), None, policy).passed
    # the floor holds against a weak production version too
    assert not evaluate_gate(version(dataset, "c", 0.05), version(dataset, "p", 0.04), policy).passed


def test_gate_other_metrics_and_missing_ones():
    dataset = DatasetFactory()
    policy = LearningPolicy(dataset=dataset, gate_metric="froc_2", gate_margin=0.0)
    assert not evaluate_gate(version(dataset, "c", 0.9, froc2=0.2), version(dataset, "p", 0.1, froc2=0.5), policy).passed
    assert evaluate_gate(version(dataset, "d", 0.5), None, policy).passed  # nothing to compare with
    unevaluated = evaluate_gate(version(dataset, "e"), None, policy)
    assert not unevaluated.passed and "no froc_2" in unevaluated.reason


def test_promotion_archives_the_previous_version_and_changes_the_serving_string(django_capture_on_commit_callbacks):
    dataset = DatasetFactory()
    first, second = version(dataset, "v-0001", 0.5), version(dataset, "v-0002", 0.6)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        promote_version(first, kind=PromotionKind.GATE)
    assert len(callbacks) == 1  # re-predict and re-rank, queued after the commit
    assert serving_version(dataset) == "v-0001.p1"
    with django_capture_on_commit_callbacks(execute=False):
        promote_version(second, kind=PromotionKind.MANUAL)
    assert production_version(dataset) == second
    assert ModelVersion.objects.get(pk=first.pk).status == ModelStatus.ARCHIVED
    assert serving_version(dataset) == "v-0002.p2"

    with django_capture_on_commit_callbacks(execute=False):
        back = rollback(dataset, reason="regression seen by readers")
    assert back.model_version == first and back.kind == PromotionKind.ROLLBACK
    assert production_version(dataset) == first
    assert serving_version(dataset) == "v-0001.p3"  # same weights, new string: clients re-predict
    assert list(Promotion.objects.values_list("serial", flat=True)) == [3, 2, 1]
    assert ModelVersion.objects.filter(dataset=dataset, status=ModelStatus.PRODUCTION).count() == 1


def test_promotion_and_rollback_refuse_what_cannot_be_done(django_capture_on_commit_callbacks):
    dataset = DatasetFactory()
    with pytest.raises(PromotionError, match="no earlier production version"):
        rollback(dataset)
    only = version(dataset, "v-0001", 0.5)
    with django_capture_on_commit_callbacks(execute=False):
        promote_version(only, kind=PromotionKind.GATE)
    with pytest.raises(PromotionError, match="already the production version"):
        promote_version(only, kind=PromotionKind.MANUAL)
    with pytest.raises(PromotionError, match="another dataset"):
        rollback(dataset, to=version(DatasetFactory(), "elsewhere", 0.9))
    assert Promotion.objects.count() == 1


def test_policy_is_created_with_defaults():
    policy = policy_of(DatasetFactory())
    assert (policy.engine, policy.gate_metric, policy.gate_margin) == ("torchvision", "map50", 0.01)

"""What inference is due for each production version, and the sweeper that recovers it.

After a promotion (or new images), the production version must predict every sampleable
image (proposals) and then rank the pool. Those tasks can be lost with their worker
(a killed worker's message comes back only after the broker's visibility timeout, hours
later). So what is due is read from the rows themselves: sampleable images without a
``Prediction`` by the version, and a ``Ranking`` by it that is no older than its newest
prediction. ``ModelVersion.inference_requested_at`` says when it was last asked for;
``recover_inference`` (called by the beat's sweep) asks again for whatever is still
missing once that is ``INFERENCE_RETRY_SECONDS`` old and no prediction arrived since.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Max
from django.utils import timezone

from annotator.datasets.models import Image
from annotator.learning.dispatch import publish_after_promotion, publish_ranking
from annotator.learning.models import ModelStatus, ModelVersion, Prediction, Ranking


def mark_requested(version_id: int) -> None:
    """Note that proposals or a ranking by this version were just asked for."""
    ModelVersion.objects.filter(pk=version_id).update(inference_requested_at=timezone.now())


def inference_state(version: ModelVersion) -> dict:
    """``{"proposals": {"done": 8, "due": 35}, "ranking": "done" | "missing"}``."""
    images = Image.objects.filter(dataset_id=version.dataset_id).sampleable()
    predictions = Prediction.objects.filter(model_version=version, image__in=images)
    newest = predictions.aggregate(newest=Max("created_at"))["newest"]
    rankings = Ranking.objects.filter(dataset_id=version.dataset_id, model_version=version)
    ranked = rankings.filter(created_at__gte=newest).exists() if newest else rankings.exists()
    return {
        "proposals": {"done": predictions.count(), "due": images.count()},
        "ranking": "done" if ranked else "missing",
        "requested_at": version.inference_requested_at,
    }


def recover_inference(now=None) -> list[int]:
    """Re-request proposals (then ranking) or the ranking alone for each production
    version with something missing, asked for at least ``INFERENCE_RETRY_SECONDS`` ago
    and with no prediction stored since (a slow task still at work is left alone).
    Returns the ids of the versions asked again."""
    now = now or timezone.now()
    quiet_since = now - timedelta(seconds=settings.INFERENCE_RETRY_SECONDS)
    asked = []
    for version in ModelVersion.objects.filter(status=ModelStatus.PRODUCTION):
        if version.inference_requested_at and version.inference_requested_at > quiet_since:
            continue
        if Prediction.objects.filter(model_version=version, created_at__gt=quiet_since).exists():
            continue
        state = inference_state(version)
        if state["proposals"]["done"] < state["proposals"]["due"]:
            publish_after_promotion(version.dataset_id, version.pk)  # the task skips what is done
        elif state["ranking"] == "missing":
            publish_ranking(version.dataset_id, None, version.pk)
        else:
            continue
        mark_requested(version.pk)
        asked.append(version.pk)
    return asked

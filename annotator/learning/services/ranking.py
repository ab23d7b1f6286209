"""Ranking a dataset's unlabeled pool, so the most informative images are read first.

Runs in the worker (it calls ``ml_backend.selection``, which imports modAL and torch).
Scores come from the stored predictions of one model version; before any model exists,
the cold-start strategy ranks by diversity of the images' appearance alone.
"""

from __future__ import annotations

import time

import numpy as np
from django.db import transaction
from PIL import Image as PILImage

from annotator.datasets.models import Dataset, Image
from annotator.learning.media import model_pixels
from annotator.learning.models import ModelVersion, Prediction, RankedImage, Ranking
from annotator.learning.selectors import policy_of, pool_images, production_version
from annotator.learning.services.predictions import prediction_detections
from ml_backend.contract import Detections

MODEL_FREE_STRATEGIES = ("cold_start", "random")
THUMBNAIL_SIDE = 32




def appearance_embedding(image: Image) -> np.ndarray:
    """A model-free embedding: the percentile-normalised 32x32 thumbnail."""
    pixels = model_pixels(image).astype(np.float32)
    low, high = np.percentile(pixels, [1, 99])
    scaled = np.clip((pixels - low) / max(high - low, 1e-6), 0, 1)
    thumb = PILImage.fromarray((scaled * 255).astype(np.uint8)).resize((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    return np.asarray(thumb, dtype=np.float32).ravel() / 255.0


def appearance_detections(images: list[Image]) -> list[Detections]:
    empty = np.zeros((0, 4), dtype=np.float32)
    return [
        Detections(empty, np.zeros(0, np.float32), np.zeros(0, np.int64), np.zeros((0, 1), np.float32),
                   appearance_embedding(image))
        for image in images
    ]


def rank_pool(dataset: Dataset, strategy: str, version: ModelVersion | None) -> Ranking:
    """Rank the pool with ``strategy`` and store the ordering (the review queue reads the
    newest ranking). Images the version has not predicted yet go last, in id order."""
    from ml_backend.selection import rank

    started = time.perf_counter()
    images = list(pool_images(dataset))
    labelled_embeddings = None
    if version is None:
        if strategy not in MODEL_FREE_STRATEGIES:
            raise ValueError(f"strategy {strategy!r} needs a model version; without one use cold_start or random")
        ranked_images, detections, flipped = images, appearance_detections(images), None
    else:
        predictions = {
            p.image_id: p
            for p in Prediction.objects.filter(model_version=version, image__in=images).select_related("model_version")
        }
        ranked_images = [image for image in images if image.pk in predictions]
        detections = [prediction_detections(predictions[image.pk]) for image in ranked_images]
        flipped = (
            [prediction_detections(predictions[image.pk], flipped=True) for image in ranked_images]
            if strategy == "localization"
            else None
        )
        labelled = (
            Prediction.objects.filter(model_version=version, image__dataset=dataset)
            .filter(image__in=Image.objects.filter(dataset=dataset).sampleable().labeled())
            .values_list("embedding", flat=True)
        )
        if labelled:
            labelled_embeddings = np.stack([np.frombuffer(bytes(e), dtype="<f4") for e in labelled])
    result = rank(strategy, [image.pk for image in ranked_images], detections,
                  labelled_embeddings=labelled_embeddings, tta_detections=flipped)
    order = list(result.image_ids) + [image.pk for image in images if image.pk not in set(result.image_ids)]
    scores = dict(zip(result.image_ids, result.scores, strict=True))
    with transaction.atomic():
        ranking = Ranking.objects.create(
            dataset=dataset, strategy=strategy, model_version=version, options=result.options,
            image_count=len(order), seconds=round(time.perf_counter() - started, 3),
        )
        RankedImage.objects.bulk_create(
            [RankedImage(ranking=ranking, image_id=image_id, position=position, score=float(scores.get(image_id, 0.0)))
             for position, image_id in enumerate(order)],
            batch_size=2000,
        )
    return ranking


def rank_dataset(dataset_id: int, strategy: str | None = None, version_id: int | None = None) -> Ranking:
    """Rank the pool with ``strategy`` (default: the dataset's policy) by the version
    (default: production; cold start when there is none)."""
    dataset = Dataset.objects.get(pk=dataset_id)
    version = ModelVersion.objects.get(pk=version_id) if version_id else production_version(dataset)
    strategy = strategy or (policy_of(dataset).ranking_strategy if version else "cold_start")
    return rank_pool(dataset, strategy, version)

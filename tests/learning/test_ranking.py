"""Ranking the pool from stored predictions (no model runs here)."""

import numpy as np
import pytest
from django.core.files.base import ContentFile

from annotator.learning.services.predictions import store_prediction
from annotator.learning.services.ranking import rank_dataset, rank_pool
from annotator.models import ModelStatus, ModelVersion, ReviewStatus, Split
from ml_backend.contract import Detections
from tests.factories import CategoryFactory, DatasetFactory, ImageFactory

pytestmark = pytest.mark.django_db


def predicted(image, version, score):
    probs = np.array([[1 - score, score]], np.float32)
    store_prediction(image, version, Detections(np.array([[2, 2, 20, 20]], np.float32), np.array([score], np.float32),
                                                np.array([1]), probs, np.full(4, score, np.float32)))


@pytest.fixture
def pool(media_root):
    dataset = DatasetFactory()
    CategoryFactory(dataset=dataset, coco_id=1, name="fracture")
    version = ModelVersion(dataset=dataset, name="frcnn-0001", engine="fake", category_ids=[1],
                           weights_sha256="0" * 64, status=ModelStatus.PRODUCTION)
    version.weights.save("w.pt", ContentFile(b"w"), save=False)
    version.save()
    images = [ImageFactory(dataset=dataset) for _ in range(4)]
    ImageFactory(dataset=dataset, split=Split.VAL)  # never ranked
    ImageFactory(dataset=dataset, status=ReviewStatus.LABELED)  # read already
    return dataset, version, images


def test_entropy_reads_the_most_uncertain_first_and_unpredicted_images_last(pool):
    dataset, version, (sure, unsure, middling, unseen) = pool
    predicted(sure, version, 0.99)
    predicted(unsure, version, 0.5)
    predicted(middling, version, 0.8)
    ranking = rank_pool(dataset, "entropy", version)
    order = list(ranking.entries.order_by("position").values_list("image_id", flat=True))
    assert order == [unsure.pk, middling.pk, sure.pk, unseen.pk]
    assert ranking.strategy == "entropy" and ranking.model_version == version and ranking.image_count == 4


def test_without_a_model_only_model_free_strategies_rank(pool):
    dataset, _, images = pool
    ranking = rank_pool(dataset, "cold_start", None)
    assert sorted(ranking.entries.values_list("image_id", flat=True)) == sorted(i.pk for i in images)
    with pytest.raises(ValueError, match="needs a model version"):
        rank_pool(dataset, "entropy", None)


def test_rank_dataset_uses_production_and_the_policy_by_default(pool):
    dataset, version, images = pool
    for image, score in zip(images, (0.9, 0.6, 0.7, 0.55), strict=True):
        predicted(image, version, score)
    ranking = rank_dataset(dataset.pk)
    assert ranking.strategy == "ranked_batch" and ranking.model_version == version
    assert ranking.entries.count() == 4

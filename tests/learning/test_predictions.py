"""Stored predictions and the proposals readers see (``replace_proposals``)."""

import numpy as np
import pytest
from django.core.files.base import ContentFile

from annotator.learning.services.predictions import replace_proposals, store_prediction
from annotator.models import Annotation, AnnotationSource, ModelVersion, Prediction, ReviewStatus
from ml_backend.contract import Detections
from tests.factories import CategoryFactory, DatasetFactory, ImageFactory

pytestmark = pytest.mark.django_db


def version(dataset, name="frcnn-0001"):
    v = ModelVersion(dataset=dataset, name=name, engine="fake", category_ids=[1], weights_sha256="0" * 64)
    v.weights.save(f"{name}.pt", ContentFile(b"w"), save=False)
    v.save()
    return v


def detections(*boxes_scores):
    boxes = np.array([b for b, _ in boxes_scores], np.float32).reshape(-1, 4)
    scores = np.array([s for _, s in boxes_scores], np.float32)
    probs = np.stack([1 - scores, scores], axis=1) if len(scores) else np.zeros((0, 2), np.float32)
    return Detections(boxes, scores, np.ones(len(scores), np.int64), probs, np.zeros(4, np.float32))


@pytest.fixture
def image(media_root):
    dataset = DatasetFactory()
    CategoryFactory(dataset=dataset, coco_id=1, name="fracture")
    return ImageFactory(dataset=dataset)


def test_proposals_above_the_threshold_are_shown_clipped_and_traced(image):
    v = version(image.dataset)
    prediction, created = store_prediction(image, v, detections(([4, 5, 20, 25], 0.9), ([1, 1, 70, 9], 0.6),
                                                                  ([0, 0, 9, 9], 0.2)))
    assert created and prediction.fracture_probability == pytest.approx(0.9)
    assert replace_proposals(image, prediction, 0.5, "frcnn-0001.p1") == 2
    boxes = Annotation.objects.filter(image=image, is_deleted=False).order_by("id")
    assert [(b.source, b.serving_version) for b in boxes] == [(AnnotationSource.MODEL, "frcnn-0001.p1")] * 2
    assert boxes[1].x + boxes[1].w == pytest.approx(64)  # clipped onto the 64 px wide image
    image.refresh_from_db()
    assert image.status == ReviewStatus.PROPOSED
    # the same serving version again changes nothing; a second delivery stores nothing twice
    assert replace_proposals(image, prediction, 0.5, "frcnn-0001.p1") == 0
    assert store_prediction(image, v, detections())[1] is False and Prediction.objects.count() == 1


def test_a_newer_version_replaces_proposals_with_revisions_but_never_touches_read_images(image):
    first = store_prediction(image, version(image.dataset), detections(([4, 5, 20, 25], 0.9)))[0]
    replace_proposals(image, first, 0.5, "frcnn-0001.p1")
    second = store_prediction(image, version(image.dataset, "frcnn-0002"), detections())[0]
    assert replace_proposals(image, second, 0.5, "frcnn-0002.p2") == 0
    old = Annotation.objects.get(image=image)
    assert old.is_deleted and old.revisions.last().reason == "replaced by frcnn-0002.p2"
    image.refresh_from_db()
    assert image.status == ReviewStatus.UNLABELED

    for status in (ReviewStatus.LABELED, ReviewStatus.NEGATIVE, ReviewStatus.SKIPPED, ReviewStatus.CONFLICT):
        type(image).objects.filter(pk=image.pk).update(status=status)
        assert replace_proposals(image, first, 0.5, "frcnn-0001.p3") == 0
        assert not Annotation.objects.filter(image=image, is_deleted=False).exists()

    # an open image whose reader has drawn a box keeps it as it is
    type(image).objects.filter(pk=image.pk).update(status=ReviewStatus.IN_REVIEW)
    Annotation.objects.create(image=image, category=image.dataset.categories.get(), x=1, y=1, w=5, h=5,
                              source=AnnotationSource.HUMAN)
    assert replace_proposals(image, first, 0.5, "frcnn-0001.p3") == 0


def test_an_image_opened_before_any_model_gets_proposals_and_stays_with_its_reader(image):
    type(image).objects.filter(pk=image.pk).update(status=ReviewStatus.IN_REVIEW)
    prediction = store_prediction(image, version(image.dataset), detections(([4, 5, 20, 25], 0.9)))[0]
    assert replace_proposals(image, prediction, 0.5, "frcnn-0001.p1") == 1
    image.refresh_from_db()
    assert image.status == ReviewStatus.IN_REVIEW

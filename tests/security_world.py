"""Rows for the access-control, audit and Label Studio tests: dataset A with one of each
object, and an outsider who is a member of dataset B only."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from django_celery_beat.models import IntervalSchedule, PeriodicTask
from rest_framework.test import APIClient

from annotator import models
from annotator.datasets.services.annotations import NewBox, create_boxes
from tests.factories import (
    CategoryFactory,
    DatasetFactory,
    ImageFactory,
    MembershipFactory,
    UserFactory,
)


@dataclass
class World:
    dataset: models.Dataset
    other: models.Dataset
    admin: object
    reader: object
    viewer: object
    outsider: object
    category: models.Category
    image: models.Image
    box: models.Annotation
    version: models.ModelVersion
    promotion: models.Promotion
    ranking: models.Ranking
    run: models.TrainingRun
    schedule: PeriodicTask


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def basic_client_for(user) -> APIClient:
    """A client that signs in with HTTP Basic (the factories' password), as Label Studio
    does, through every authentication check."""
    client = APIClient()
    token = base64.b64encode(f"{user.username}:pw-for-tests".encode()).decode()
    client.credentials(HTTP_AUTHORIZATION=f"Basic {token}")
    return client


def make_world() -> World:
    dataset, other = DatasetFactory(), DatasetFactory()
    admin = MembershipFactory(dataset=dataset, role=models.Role.ADMIN).user
    reader = MembershipFactory(dataset=dataset, role=models.Role.RADIOLOGIST).user
    viewer = MembershipFactory(dataset=dataset, role=models.Role.VIEWER).user
    outsider = MembershipFactory(dataset=other, role=models.Role.ADMIN, user=UserFactory()).user
    category = CategoryFactory(dataset=dataset, name="fracture")
    image = ImageFactory(dataset=dataset)
    (box,) = create_boxes([NewBox(image, category, 4, 5, 10, 8)], actor=reader, reason="test")
    version = models.ModelVersion.objects.create(
        dataset=dataset, name="frcnn-0001", engine="torchvision", category_ids=[category.coco_id],
        weights="models/x.pt", weights_sha256="0" * 64, status=models.ModelStatus.PRODUCTION,
    )
    promotion = models.Promotion.objects.create(
        dataset=dataset, model_version=version, serial=3, kind=models.PromotionKind.MANUAL, actor=admin
    )
    ranking = models.Ranking.objects.create(dataset=dataset, strategy="entropy", model_version=version, image_count=1)
    models.RankedImage.objects.create(ranking=ranking, image=image, position=0, score=0.42)
    run = models.TrainingRun.objects.create(dataset=dataset, trigger=models.RunTrigger.MANUAL)
    every = IntervalSchedule.objects.create(every=60, period=IntervalSchedule.MINUTES)
    schedule = PeriodicTask.objects.create(
        name=f"retrain {dataset.pk}", task="annotator.tasks.scheduled_training", interval=every,
        args=json.dumps([dataset.pk]),
    )
    return World(dataset, other, admin, reader, viewer, outsider, category, image, box, version,
                 promotion, ranking, run, schedule)

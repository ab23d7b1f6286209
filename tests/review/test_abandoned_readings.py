"""An image opened and left without finishing returns to the pool when its lease runs out."""

from datetime import timedelta

import pytest
from django.utils import timezone

from annotator.datasets.services.annotations import NewBox, create_boxes
from annotator.models import AnnotationSource, Image, ImageLease, ReviewStatus
from annotator.review.services.reading import open_image, release_abandoned_readings
from tests.factories import CategoryFactory, ImageFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_expired_leases_return_images_to_the_pool_and_live_ones_keep_them(media_root):
    reader = UserFactory()
    left, proposed, still_reading = (ImageFactory() for _ in range(3))
    category = CategoryFactory(dataset=proposed.dataset)
    create_boxes([NewBox(proposed, category, 1, 1, 5, 5, source=AnnotationSource.MODEL, score=0.7)])
    for image in (left, proposed, still_reading):
        open_image(image, reader)
    assert set(Image.objects.values_list("status", flat=True)) == {ReviewStatus.IN_REVIEW}
    ImageLease.objects.exclude(image=still_reading).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert release_abandoned_readings() == 2
    statuses = dict(Image.objects.values_list("pk", "status"))
    assert statuses == {left.pk: ReviewStatus.UNLABELED, proposed.pk: ReviewStatus.PROPOSED,
                        still_reading.pk: ReviewStatus.IN_REVIEW}
    open_image(left, reader)  # coming back resumes the reading
    assert Image.objects.get(pk=left.pk).status == ReviewStatus.IN_REVIEW

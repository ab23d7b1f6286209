"""A frozen validation split is fixed, and never offered for labeling or training."""

import pytest

from annotator.datasets.services.membership import freeze_validation_split
from annotator.models import Image, Split, ValidationSplitFrozen
from tests.factories import DatasetFactory, ImageFactory

pytestmark = pytest.mark.django_db


def test_frozen_validation_images_cannot_leave_and_others_cannot_enter(media_root):
    dataset = DatasetFactory()
    val = ImageFactory(dataset=dataset, split=Split.VAL)
    pool = ImageFactory(dataset=dataset, split=Split.POOL)
    freeze_validation_split(dataset)

    val.split = Split.TRAIN
    with pytest.raises(ValidationSplitFrozen, match="frozen"):
        val.save()
    pool.split = Split.VAL
    with pytest.raises(ValidationSplitFrozen):
        pool.save()
    with pytest.raises(ValidationSplitFrozen):
        ImageFactory(dataset=dataset, split=Split.VAL)
    assert dict(Image.objects.values_list("pk", "split")) == {val.pk: Split.VAL, pool.pk: Split.POOL}

    pool.split = Split.TRAIN  # moves outside the validation split stay allowed
    pool.save()


def test_freezing_is_idempotent(media_root):
    dataset = freeze_validation_split(DatasetFactory())
    frozen_at = dataset.val_frozen_at
    assert frozen_at is not None
    assert freeze_validation_split(dataset).val_frozen_at == frozen_at


def test_validation_and_test_images_are_never_sampleable(media_root):
    dataset = DatasetFactory()
    images = {split: ImageFactory(dataset=dataset, split=split) for split in Split}
    assert set(Image.objects.sampleable()) == {images[Split.TRAIN], images[Split.POOL]}

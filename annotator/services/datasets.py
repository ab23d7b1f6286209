"""Datasets, their categories and who may see them."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Max, QuerySet
from django.utils import timezone

from annotator.models import Category, Dataset, Role

MAX_CATEGORY_NAME = 100


class InvalidCategory(ValueError):
    """A category that cannot be stored; the message says why."""


def visible_datasets(user) -> QuerySet[Dataset]:
    """Superusers see every dataset; everyone else sees the ones they are a member of."""
    if user.is_superuser:
        return Dataset.objects.all()
    return Dataset.objects.filter(memberships__user=user)


def can_write(user, dataset: Dataset) -> bool:
    """Admins and radiologists of the dataset (and superusers) may add images and boxes."""
    if user.is_superuser:
        return True
    return dataset.memberships.filter(
        user=user, role__in=(Role.ADMIN, Role.RADIOLOGIST)
    ).exists()


def freeze_validation_split(dataset: Dataset) -> Dataset:
    """Fix the validation split's membership from now on. Idempotent.

    Locks the dataset row so that a concurrent import cannot slip an image in between.
    """
    with transaction.atomic():
        locked = Dataset.objects.select_for_update().get(pk=dataset.pk)
        if locked.val_frozen_at is None:
            locked.val_frozen_at = timezone.now()
            locked.save(update_fields=["val_frozen_at"])
    dataset.refresh_from_db()
    return dataset


def resolve_category(
    dataset: Dataset, name: str, coco_id: int | None = None, supercategory: str = ""
) -> Category:
    """The dataset's category of this name, created if new.

    A new category keeps ``coco_id`` when it is free (so import-then-export keeps ids)
    and otherwise takes the next free id. Names are stored as given and escaped when
    shown.
    """
    name = name.strip() if isinstance(name, str) else name
    if not isinstance(name, str) or not name:
        raise InvalidCategory("a category needs a non-empty name")
    if len(name) > MAX_CATEGORY_NAME:
        raise InvalidCategory(f"category name {name[:40]!r}... is over {MAX_CATEGORY_NAME} characters")
    existing = dataset.categories.filter(name=name).first()
    if existing:
        return existing
    if coco_id is None or dataset.categories.filter(coco_id=coco_id).exists():
        coco_id = (dataset.categories.aggregate(top=Max("coco_id"))["top"] or 0) + 1
    return Category.objects.create(
        dataset=dataset, name=name, coco_id=coco_id, supercategory=supercategory or ""
    )

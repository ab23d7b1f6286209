"""Datasets, their categories and who may see them."""

from __future__ import annotations

import json

from django.db import transaction
from django.db.models import Max, QuerySet
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from annotator.models import AuditAction, Category, Dataset, Membership, Role
from annotator.services.audit import record_event
from annotator.services.schedules import SCHEDULED_TASK

MAX_CATEGORY_NAME = 100


class InvalidCategory(ValueError):
    """A category that cannot be stored; the message says why."""


class MembershipConflict(ValueError):
    """A membership change that would leave the dataset inconsistent (e.g. no admin)."""


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


def role_of(user, dataset: Dataset) -> str | None:
    """The user's role in the dataset (superusers act as admins), or None."""
    if not user.is_authenticated:
        return None
    if user.is_superuser:
        return Role.ADMIN
    return dataset.memberships.filter(user=user).values_list("role", flat=True).first()


def can_admin(user, dataset: Dataset) -> bool:
    """Admins of the dataset (and superusers) manage it, its members and schedules."""
    return role_of(user, dataset) == Role.ADMIN


def update_dataset(dataset: Dataset, changes: dict, *, actor, request=None) -> Dataset:
    """Apply validated field changes and audit them (before/after of changed fields)."""
    with transaction.atomic():
        locked = Dataset.objects.select_for_update().get(pk=dataset.pk)
        before = {field: getattr(locked, field) for field in changes}
        for field, value in changes.items():
            setattr(locked, field, value)
        locked.save(update_fields=list(changes) or None)
        record_event(
            request, actor, AuditAction.DATASET_UPDATED, dataset=locked, obj=locked,
            details={"before": before, "after": changes},
        )
    return locked


def _admins_left(dataset: Dataset, without: Membership) -> bool:
    return dataset.memberships.filter(role=Role.ADMIN).exclude(pk=without.pk).exists()


def add_member(dataset: Dataset, user, role: str, *, actor, request=None) -> Membership:
    """Add ``user`` with ``role``; refuses a user who is already a member."""
    with transaction.atomic():
        if dataset.memberships.filter(user=user).exists():
            raise MembershipConflict(f"{user.get_username()} is already a member of {dataset.name}")
        membership = Membership.objects.create(dataset=dataset, user=user, role=role)
        record_event(
            request, actor, AuditAction.MEMBER_ADDED, dataset=dataset, obj=membership,
            details={"user": user.get_username(), "role": role},
        )
    return membership


def change_member_role(membership: Membership, role: str, *, actor, request=None) -> Membership:
    """Change a member's role; the last admin cannot be demoted. Locks the dataset row,
    so two concurrent demotions cannot both pass the last-admin check."""
    with transaction.atomic():
        Dataset.objects.select_for_update().get(pk=membership.dataset_id)
        locked = Membership.objects.select_for_update().get(pk=membership.pk)
        if locked.role == Role.ADMIN and role != Role.ADMIN and not _admins_left(locked.dataset, locked):
            raise MembershipConflict("the dataset's last admin cannot be demoted")
        before = locked.role
        locked.role = role
        locked.save(update_fields=["role"])
        record_event(
            request, actor, AuditAction.MEMBER_CHANGED, dataset=locked.dataset, obj=locked,
            details={"user": locked.user.get_username(), "before": before, "after": role},
        )
    return locked


def remove_member(membership: Membership, *, actor, request=None) -> None:
    """Remove a member; the last admin cannot be removed (locks as ``change_member_role``)."""
    with transaction.atomic():
        Dataset.objects.select_for_update().get(pk=membership.dataset_id)
        locked = Membership.objects.select_for_update().get(pk=membership.pk)
        if locked.role == Role.ADMIN and not _admins_left(locked.dataset, locked):
            raise MembershipConflict("the dataset's last admin cannot be removed")
        record_event(
            request, actor, AuditAction.MEMBER_REMOVED, dataset=locked.dataset, obj=locked,
            details={"user": locked.user.get_username(), "role": locked.role},
        )
        locked.delete()


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


def schedule_dataset_id(task) -> int | None:
    """The dataset a django-celery-beat ``PeriodicTask`` works on: its kwargs'
    ``dataset_id`` (or ``dataset``), or the first argument of the retraining task
    (``services.schedules.SCHEDULED_TASK``); None when it names none."""
    try:
        kwargs = json.loads(task.kwargs or "{}")
        args = json.loads(task.args or "[]")
    except ValueError:
        return None
    value = kwargs.get("dataset_id", kwargs.get("dataset")) if isinstance(kwargs, dict) else None
    if value is None and task.task == SCHEDULED_TASK and isinstance(args, list) and args:
        value = args[0]
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def visible_schedules(user) -> list:
    """The periodic tasks of the datasets the user can see, in id order."""
    dataset_ids = set(visible_datasets(user).values_list("pk", flat=True))
    return [
        task for task in PeriodicTask.objects.order_by("id")
        if schedule_dataset_id(task) in dataset_ids
    ]


def can_administer(user, dataset: Dataset) -> bool:
    """Admins of the dataset (and superusers) train, promote, roll back and schedule."""
    if user.is_superuser:
        return True
    return dataset.memberships.filter(user=user, role=Role.ADMIN).exists()

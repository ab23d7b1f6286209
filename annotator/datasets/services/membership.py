"""Changing datasets: their fields, members, categories and the frozen validation split."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from annotator.audit.models import AuditAction
from annotator.audit.services import record_event
from annotator.datasets.models import Category, Dataset, Membership, Role
from annotator.errors import Conflict, InvalidInput

MAX_CATEGORY_NAME = 100


class InvalidCategory(InvalidInput):
    """A category that cannot be stored; the message says why."""


class MembershipConflict(Conflict):
    """A membership change that would leave the dataset inconsistent (e.g. no admin)."""










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

"""Writing boxes. Every write leaves an ``AnnotationRevision`` (append-only history)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from annotator.audit.services import record_revision
from annotator.datasets.models import (
    Annotation,
    AnnotationRevision,
    AnnotationSource,
    Category,
    Image,
    ReviewStatus,
    RevisionAction,
)
from annotator.errors import Conflict, InvalidInput

# Boxes may touch the border; rounding in other tools puts them a hair outside.
EDGE_TOLERANCE_PX = 0.5


class InvalidBox(InvalidInput):
    """A box that cannot be stored; the message says why."""


def validate_box(x: float, y: float, w: float, h: float, width: int, height: int) -> None:
    """Refuse boxes with non-finite or non-positive sizes, or reaching outside the image."""
    values = (x, y, w, h)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        raise InvalidBox(f"box {str(list(values))[:200]} must be four numbers")
    try:
        values = tuple(float(v) for v in values)  # a 400-digit integer does not fit: refused below
    except OverflowError:
        raise InvalidBox("a box value is too large to be a pixel coordinate") from None
    x, y, w, h = values
    if not all(math.isfinite(v) for v in values):
        raise InvalidBox(f"box {list(values)} has a value that is not finite")
    if w <= 0 or h <= 0:
        raise InvalidBox(f"box {list(values)} has a width or height that is not positive")
    tol = EDGE_TOLERANCE_PX
    if x < -tol or y < -tol or x + w > width + tol or y + h > height + tol:
        raise InvalidBox(f"box {list(values)} lies outside the {width}x{height} image")


def clamp_to_image(x: float, y: float, w: float, h: float, width: int, height: int):
    """Pull a validated box that overshoots by at most the tolerance onto the image.
    A box already inside is returned unchanged (no float round-off)."""
    if x >= 0 and y >= 0 and x + w <= width and y + h <= height:
        return x, y, w, h
    x0, y0 = max(x, 0.0), max(y, 0.0)
    x1, y1 = min(x + w, float(width)), min(y + h, float(height))
    return x0, y0, x1 - x0, y1 - y0


@dataclass(frozen=True)
class NewBox:
    image: Image
    category: Category
    x: float
    y: float
    w: float
    h: float
    source: str = AnnotationSource.HUMAN
    score: float | None = None
    serving_version: str = ""


def create_boxes(boxes: Sequence[NewBox], *, actor=None, reason: str = "") -> list[Annotation]:
    """Validate and insert boxes with their first revision, in bulk.

    Runs in one transaction: either every box and revision is stored or none.
    """
    annotations = []
    for box in boxes:
        validate_box(box.x, box.y, box.w, box.h, box.image.width, box.image.height)
        x, y, w, h = clamp_to_image(box.x, box.y, box.w, box.h, box.image.width, box.image.height)
        annotations.append(
            Annotation(
                image=box.image,
                category=box.category,
                x=x,
                y=y,
                w=w,
                h=h,
                source=box.source,
                score=box.score,
                serving_version=box.serving_version,
                author=actor,
            )
        )
    with transaction.atomic():
        created = Annotation.objects.bulk_create(annotations, batch_size=1000)
        if created and created[0].pk is None:  # backends that return no ids on bulk insert
            raise RuntimeError("the database backend did not return ids for new boxes")
        AnnotationRevision.objects.bulk_create(
            [
                AnnotationRevision(
                    annotation=annotation,
                    version=annotation.version,
                    action=RevisionAction.CREATED,
                    actor=actor,
                    reason=reason,
                    before=None,
                    after=annotation.snapshot(),
                )
                for annotation in created
            ],
            batch_size=1000,
        )
    return created


# --- edits from the review page (optimistic locking on ``Annotation.version``) ----------


class VersionConflict(Conflict):
    """The box changed since the reader saw it; ``current`` is its state now (with id and
    version), for the conflict view."""

    def __init__(self, current: dict):
        super().__init__("this box was changed by someone else since you loaded it")
        self.current = current

    def details(self) -> dict:
        return {"current": self.current}


class NotAProposal(InvalidInput):
    """Only model proposals can be accepted."""


def box_state(annotation: Annotation) -> dict:
    """A box as the review page sees it: its snapshot plus id, version and author."""
    return {
        "id": annotation.pk,
        "version": annotation.version,
        "image": annotation.image_id,
        "author": annotation.author.get_username() if annotation.author_id else None,
        **annotation.snapshot(),
    }


def _locked_box(annotation_id: int, expected_version: int) -> Annotation:
    """The box, locked, if it is still at ``expected_version``; else VersionConflict.
    A deleted box is a conflict too: someone removed it since the reader saw it.

    Category and author are not joined into the locking query: when it waits for another
    writer's lock, PostgreSQL re-reads the locked row but keeps the joined rows it read
    before, so a box just re-classed or claimed would come back with its new
    ``category_id`` / ``author_id`` and the old (or no) category / author object."""
    annotation = (
        Annotation.objects.select_for_update(of=("self",))
        .select_related("image")  # never changes
        .get(pk=annotation_id)
    )
    if annotation.version != expected_version or annotation.is_deleted:
        raise VersionConflict(box_state(annotation))
    return annotation


def _write_revision(annotation: Annotation, before: dict, action: str, actor, reason: str) -> None:
    annotation.version += 1
    annotation.save()
    AnnotationRevision.objects.create(
        annotation=annotation, version=annotation.version, action=action, actor=actor,
        reason=reason, before=before, after=annotation.snapshot(),
    )
    reopen_if_boxes_disagree(annotation.image_id)


def reopen_if_boxes_disagree(image_id: int) -> bool:
    """The one rule between a finished image's status and its boxes: *labeled* has at
    least one confirmed box, *no fracture* has none. A box edit that breaks it (a box drawn
    on an image marked "no fracture", the last box of a labeled one deleted) puts the image
    back *in review*, to be finished again. Call inside the edit's transaction."""
    human = Annotation.objects.filter(image_id=image_id, source=AnnotationSource.HUMAN, is_deleted=False)
    disagreeing = Image.objects.filter(pk=image_id).filter(
        Q(status=ReviewStatus.NEGATIVE, pk__in=human.values("image_id"))
        | (Q(status=ReviewStatus.LABELED) & ~Q(pk__in=human.values("image_id")))
    )
    return bool(disagreeing.update(status=ReviewStatus.IN_REVIEW, updated_at=timezone.now()))


def update_box(annotation_id: int, expected_version: int, changes: dict, actor, reason: str = "review") -> Annotation:
    """Move, resize or re-class a box if it is still at ``expected_version``.

    ``changes`` holds any of ``x, y, w, h`` (pixels) and ``category`` (COCO id of the
    image's dataset). An edited proposal becomes a human box (its score and model version
    stay, for traceability). Locks the box row (``select_for_update``) for the compare-
    and-write; raises ``VersionConflict``, ``InvalidBox`` or ``Annotation.DoesNotExist``
    and then writes nothing.
    """
    unknown = set(changes) - {"x", "y", "w", "h", "category"}
    if unknown:
        raise InvalidBox(f"cannot change {', '.join(sorted(unknown))}")
    with transaction.atomic():
        annotation = _locked_box(annotation_id, expected_version)
        before = annotation.snapshot()
        image = annotation.image
        x, y, w, h = (changes.get(k, getattr(annotation, k)) for k in ("x", "y", "w", "h"))
        validate_box(x, y, w, h, image.width, image.height)
        annotation.x, annotation.y, annotation.w, annotation.h = clamp_to_image(
            x, y, w, h, image.width, image.height
        )
        if "category" in changes:
            annotation.category = _category_of(image, changes["category"])
        annotation.source = AnnotationSource.HUMAN
        annotation.author = actor
        _write_revision(annotation, before, RevisionAction.UPDATED, actor, reason)
    return annotation


def _category_of(image: Image, coco_id) -> Category:
    category = None
    if isinstance(coco_id, int) and not isinstance(coco_id, bool):
        category = Category.objects.filter(dataset_id=image.dataset_id, coco_id=coco_id).first()
    if category is None:
        raise InvalidBox(f"category {coco_id!r} is not one of this dataset's categories")
    return category


def delete_box(annotation_id: int, expected_version: int, actor, reason: str = "review") -> Annotation:
    """Soft-delete a box (``is_deleted``) if it is still at ``expected_version``, with a
    revision. Locks the box row; raises ``VersionConflict`` and then writes nothing."""
    with transaction.atomic():
        annotation = _locked_box(annotation_id, expected_version)
        before = annotation.snapshot()
        annotation.is_deleted = True
        _write_revision(annotation, before, RevisionAction.DELETED, actor, reason)
    return annotation


def accept_proposal(annotation_id: int, expected_version: int, actor, reason: str = "accepted") -> Annotation:
    """Confirm a model proposal as it is: source becomes human, geometry, class, score
    and model version stay. Locks the box row; raises ``VersionConflict`` or
    ``NotAProposal`` and then writes nothing."""
    with transaction.atomic():
        annotation = _locked_box(annotation_id, expected_version)
        if annotation.source != AnnotationSource.MODEL:
            raise NotAProposal(f"box {annotation_id} is not a model proposal")
        before = annotation.snapshot()
        annotation.source = AnnotationSource.HUMAN
        annotation.author = actor
        _write_revision(annotation, before, RevisionAction.UPDATED, actor, reason)
    return annotation


def accept_proposals_above(image: Image, threshold: float, actor) -> list[Annotation]:
    """Accept every proposal of ``image`` scoring at least ``threshold``, each with its
    revision, in one transaction. Locks the proposals' rows, so a concurrent edit of one
    of them either lands first (the box is then human and left alone) or waits."""
    accepted = []
    with transaction.atomic():
        proposals = Annotation.objects.select_for_update(of=("self",)).filter(
            image=image, source=AnnotationSource.MODEL, is_deleted=False, score__gte=threshold
        )
        for annotation in proposals:
            accepted.append(accept_proposal(annotation.pk, annotation.version, actor))
    return accepted


def add_box(image: Image, coco_id, x, y, w, h, actor) -> Annotation:
    """A reader's new box on ``image`` (class by COCO id), with its first revision.
    Raises ``InvalidBox`` for an unknown class or a box outside the image."""
    with transaction.atomic():
        (annotation,) = create_boxes([NewBox(image, _category_of(image, coco_id), x, y, w, h)], actor=actor,
                                     reason="review")
        reopen_if_boxes_disagree(image.pk)
    record_revision(annotation.revisions.get())  # bulk inserts send no post_save
    return annotation

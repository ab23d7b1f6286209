"""Writing boxes. Every write leaves an ``AnnotationRevision`` (append-only history)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction

from annotator.models import (
    Annotation,
    AnnotationRevision,
    AnnotationSource,
    Category,
    Image,
    RevisionAction,
)

# Boxes may touch the border; rounding in other tools puts them a hair outside.
EDGE_TOLERANCE_PX = 0.5


class InvalidBox(ValueError):
    """A box that cannot be stored; the message says why."""


def validate_box(x: float, y: float, w: float, h: float, width: int, height: int) -> None:
    """Refuse boxes with non-finite or non-positive sizes, or reaching outside the image."""
    values = (x, y, w, h)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        raise InvalidBox(f"box {list(values)} must be four numbers")
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
    model_version: str = ""


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
                model_version=box.model_version,
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

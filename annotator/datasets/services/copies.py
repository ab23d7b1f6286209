"""Pixel-identical copies of one image: matching their boxes and deciding the image's label.

Each copy is an independent read of the same picture (FracAtlas has fractured images
boxed twice by different hands). Boxes of the same class that overlap with IoU >= 0.5
agree: one box is kept for them (the first copy's), remembering every copy it came from
and its IoU with the kept box. The copies disagree when one is negative while another
has boxes, or when a box of one copy has no agreeing box in another copy that has boxes;
the image is then a label conflict, and every distinct box is kept so a reader sees them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pycocotools import mask as mask_utils
from scipy.optimize import linear_sum_assignment

from annotator.datasets.models import CopyVerdict, ReviewStatus

AGREEMENT_IOU = 0.5


@dataclass(frozen=True)
class CopyBox:
    category: int  # COCO id
    bbox: tuple[float, float, float, float]  # x, y, w, h in pixels


@dataclass(frozen=True)
class CopyRead:
    """One file's label: its name, its verdict and its boxes."""

    file_name: str
    verdict: str  # a CopyVerdict
    boxes: tuple[CopyBox, ...] = ()


@dataclass
class KeptBox:
    """A box to store, and the copies' boxes it stands for: ``(copy index, box index,
    IoU with the kept box)``, the first of them being the kept box itself."""

    box: CopyBox
    sources: list[tuple[int, int, float]] = field(default_factory=list)


@dataclass
class Reconciliation:
    boxes: list[KeptBox]
    status: str  # the image's ReviewStatus
    conflict: str  # why the copies disagree; empty when they agree
    readers: frozenset[int]  # the copies that carry a read: boxes or a verdict

    def matched(self) -> list[KeptBox]:
        """Kept boxes that more than one copy drew."""
        return [kept for kept in self.boxes if len(kept.sources) > 1]

    def disputed(self) -> list[KeptBox]:
        """Kept boxes that some copy carrying a read did not draw."""
        return [kept for kept in self.boxes if not self.readers <= {source[0] for source in kept.sources}]


def box_iou(a: list[tuple], b: list[tuple]) -> np.ndarray:
    """IoU matrix of two lists of ``x, y, w, h`` boxes (rows: ``a``)."""
    if not a or not b:
        return np.zeros((len(a), len(b)))
    return np.asarray(mask_utils.iou([list(x) for x in a], [list(x) for x in b], [0] * len(b)))


def _match_copy(kept: list[KeptBox], copy_index: int, boxes: tuple[CopyBox, ...]) -> list[int]:
    """Join each box of one copy to the kept box it agrees with best (one to one, class by
    class, IoU >= AGREEMENT_IOU); returns the indices of the boxes that agree with none."""
    unmatched = []
    for category in sorted({box.category for box in boxes}):
        mine = [i for i, box in enumerate(boxes) if box.category == category]
        theirs = [k for k in kept if k.box.category == category]
        iou = box_iou([boxes[i].bbox for i in mine], [k.box.bbox for k in theirs])
        rows, cols = linear_sum_assignment(iou, maximize=True) if iou.size else ((), ())
        joined = set()
        for row, col in zip(rows, cols, strict=True):
            if iou[row, col] >= AGREEMENT_IOU:
                theirs[col].sources.append((copy_index, mine[row], float(iou[row, col])))
                joined.add(mine[row])
        unmatched.extend(i for i in mine if i not in joined)
    return sorted(unmatched)


def _box_text(box: CopyBox) -> str:
    return "[" + ", ".join(f"{v:g}" for v in box.bbox) + "]"


def reconcile(copies: list[CopyRead]) -> Reconciliation:
    """Match the boxes of ``copies`` (in their order) and decide the image's status."""
    kept: list[KeptBox] = []
    for index, copy in enumerate(copies):
        for i in _match_copy(kept, index, copy.boxes):
            kept.append(KeptBox(copy.boxes[i], [(index, i, 1.0)]))

    reasons = []
    boxed = [i for i, copy in enumerate(copies) if copy.boxes]
    negative = [copy for copy in copies if copy.verdict == CopyVerdict.NEGATIVE]
    for copy in negative:
        for i in boxed:
            count = len(copies[i].boxes)
            reasons.append(
                f"{copies[i].file_name} has {count} box{'es' if count > 1 else ''} "
                f"but {copy.file_name} is negative"
            )
    if len(boxed) > 1:
        for entry in kept:
            drawn_by = {source[0] for source in entry.sources}
            first = copies[entry.sources[0][0]].file_name
            for i in boxed:
                if i not in drawn_by:
                    reasons.append(
                        f"box {_box_text(entry.box)} (class {entry.box.category}) of {first} has no "
                        f"match (IoU >= {AGREEMENT_IOU}) in {copies[i].file_name}"
                    )

    if reasons:
        status = ReviewStatus.CONFLICT
    elif all(copy.verdict == CopyVerdict.UNLABELED for copy in copies):
        status = ReviewStatus.UNLABELED
    else:
        status = ReviewStatus.LABELED if kept else ReviewStatus.NEGATIVE
    readers = frozenset(i for i, copy in enumerate(copies) if copy.boxes or copy.verdict != CopyVerdict.UNLABELED)
    return Reconciliation(kept, status, "; ".join(reasons), readers)

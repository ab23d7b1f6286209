"""Uncertainty measures: pure functions from detections to numbers.

Box measures take ``class_probs`` rows (one row per box, column 0 = background,
columns 1.. = the fracture categories; rows sum to 1) and use the *whole* row,
background included: a box the model calls 50 % fracture / 50 % background is as
uncertain as one split 50/50 between two fracture types, and a confident
"this is background" box is certain. With ``C = 1 + K`` columns:

- least confidence ``1 - max p``, in ``[0, 1 - 1/C]``
- margin ``1 - (p_first - p_second)``, in ``[0, 1]``
- entropy ``-sum p log p`` (natural log), in ``[0, log C]``
- localization: ``1 - IoU`` between a box and its match among the boxes found in the
  horizontally flipped image (mapped back), matched one-to-one by the Hungarian
  algorithm on IoU, class-agnostic; a box without a match of IoU >= ``min_iou`` scores
  ``penalty``. In ``[0, max(1, penalty)]``.

An image's score aggregates its boxes above the display ``threshold`` (max, mean or
sum). An image with nothing above the threshold is scored from its best sub-threshold
candidate (the highest score), because a missed fracture is the costly error; an image
with no candidate at all gets the measure's maximum (``1 - 1/C``, ``1``, ``log C``, or
``penalty``): the model has nothing to say about it, so it is never treated as certain.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pycocotools import mask as coco_mask
from scipy.optimize import linear_sum_assignment

from ml_backend.contract import Detections

CLASS_MEASURES = ("least_confidence", "margin", "entropy")
MEASURES = (*CLASS_MEASURES, "localization")
AGGREGATES = ("max", "mean", "sum")


def least_confidence(probs: np.ndarray) -> np.ndarray:
    """``1 - max p`` per row."""
    return 1.0 - np.asarray(probs, dtype=np.float64).max(axis=1)


def margin(probs: np.ndarray) -> np.ndarray:
    """``1 - (p_first - p_second)`` per row: 1 when the two best classes tie."""
    top_two = np.sort(np.asarray(probs, dtype=np.float64), axis=1)[:, -2:]
    return 1.0 - (top_two[:, 1] - top_two[:, 0])


def entropy(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy per row in nats (``0 log 0 = 0``)."""
    p = np.asarray(probs, dtype=np.float64)
    logs = np.log(np.where(p > 0, p, 1.0))
    return -(p * logs).sum(axis=1)


_CLASS_MEASURE_FUNCTIONS = {
    "least_confidence": least_confidence,
    "margin": margin,
    "entropy": entropy,
}


def box_iou(boxes: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU matrix between two sets of ``xyxy`` boxes, shape ``(len(boxes), len(others))``."""
    if len(boxes) == 0 or len(others) == 0:
        return np.zeros((len(boxes), len(others)))

    def xywh(b: np.ndarray) -> np.ndarray:
        b = np.asarray(b, dtype=np.float64)
        return np.column_stack([b[:, :2], b[:, 2:] - b[:, :2]])

    return np.asarray(coco_mask.iou(xywh(boxes), xywh(others), [0] * len(others)))


def localization_instability(
    boxes: np.ndarray, flipped_boxes: np.ndarray, min_iou: float = 0.1, penalty: float = 1.0
) -> np.ndarray:
    """``1 - IoU`` of each box with its one-to-one match among ``flipped_boxes``
    (already mapped back to the original coordinates); ``penalty`` without a match."""
    scores = np.full(len(boxes), float(penalty))
    iou = box_iou(boxes, flipped_boxes)
    if iou.size:
        rows, cols = linear_sum_assignment(iou, maximize=True)
        matched = iou[rows, cols] >= min_iou
        scores[rows[matched]] = 1.0 - iou[rows[matched], cols[matched]]
    return scores


def maximum_uncertainty(measure: str, n_columns: int, penalty: float = 1.0) -> float:
    """The largest value ``measure`` can take with ``n_columns`` probability columns."""
    if measure == "least_confidence":
        return 1.0 - 1.0 / n_columns
    if measure == "margin":
        return 1.0
    if measure == "entropy":
        return float(np.log(n_columns))
    if measure == "localization":
        return max(1.0, float(penalty))
    raise ValueError(f"unknown measure {measure!r}; expected one of {MEASURES}")


def aggregate_boxes(values: np.ndarray, how: str) -> float:
    """Reduce box scores to one image score."""
    if how == "max":
        return float(np.max(values))
    if how == "mean":
        return float(np.mean(values))
    if how == "sum":
        return float(np.sum(values))
    raise ValueError(f"unknown aggregate {how!r}; expected one of {AGGREGATES}")


def box_uncertainties(
    detections: Detections,
    measure: str,
    tta_detections: Detections | None = None,
    min_iou: float = 0.1,
    penalty: float = 1.0,
) -> np.ndarray:
    """The measure for every box of ``detections``."""
    if measure in _CLASS_MEASURE_FUNCTIONS:
        return _CLASS_MEASURE_FUNCTIONS[measure](detections.class_probs)
    if measure == "localization":
        if tta_detections is None:
            raise ValueError("the localization measure needs tta_detections (flipped image)")
        return localization_instability(detections.boxes, tta_detections.boxes, min_iou, penalty)
    raise ValueError(f"unknown measure {measure!r}; expected one of {MEASURES}")


def image_uncertainty(
    detections: Detections,
    measure: str = "entropy",
    aggregate: str = "max",
    threshold: float = 0.5,
    tta_detections: Detections | None = None,
    min_iou: float = 0.1,
    penalty: float = 1.0,
) -> float:
    """One image's score: the aggregate over boxes scoring at least ``threshold``, else
    the best sub-threshold candidate's value, else the measure's maximum (see module)."""
    if aggregate not in AGGREGATES:
        raise ValueError(f"unknown aggregate {aggregate!r}; expected one of {AGGREGATES}")
    if len(detections.scores) == 0:
        return maximum_uncertainty(measure, detections.class_probs.shape[1], penalty)
    values = box_uncertainties(detections, measure, tta_detections, min_iou, penalty)
    shown = detections.scores >= threshold
    if not shown.any():
        return float(values[np.argmax(detections.scores)])
    return aggregate_boxes(values[shown], aggregate)


def pool_uncertainty(
    detections: Sequence[Detections],
    measure: str = "entropy",
    aggregate: str = "max",
    threshold: float = 0.5,
    tta_detections: Sequence[Detections] | None = None,
    min_iou: float = 0.1,
    penalty: float = 1.0,
) -> np.ndarray:
    """``image_uncertainty`` for each image of a pool, as an array."""
    if tta_detections is not None and len(tta_detections) != len(detections):
        raise ValueError("tta_detections must have one entry per image")
    flipped = tta_detections if tta_detections is not None else [None] * len(detections)
    return np.array(
        [
            image_uncertainty(d, measure, aggregate, threshold, t, min_iou, penalty)
            for d, t in zip(detections, flipped, strict=True)
        ],
        dtype=np.float64,
    )

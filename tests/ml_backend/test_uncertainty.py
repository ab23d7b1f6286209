import math

import numpy as np
import pytest

from ml_backend.contract import Detections
from ml_backend.uncertainty import (
    aggregate_boxes,
    entropy,
    image_uncertainty,
    least_confidence,
    localization_instability,
    margin,
    pool_uncertainty,
)


def detections(boxes, scores, probs):
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    probs = np.asarray(probs, dtype=np.float32)
    return Detections(
        boxes=boxes,
        scores=np.asarray(scores, dtype=np.float32),
        labels=np.ones(len(boxes), dtype=np.int64),
        class_probs=probs,
        embedding=np.zeros(4, dtype=np.float32),
    )


def test_entropy_of_uniform_is_log_of_class_count():
    assert entropy(np.full((2, 3), 1 / 3)) == pytest.approx([math.log(3)] * 2)
    assert entropy(np.array([[1.0, 0.0, 0.0]])) == pytest.approx([0.0])
    assert entropy(np.array([[0.5, 0.5, 0.0]])) == pytest.approx([math.log(2)])


def test_least_confidence():
    assert least_confidence(np.array([[0.0, 1.0, 0.0], [0.2, 0.5, 0.3]])) == pytest.approx(
        [0.0, 0.5]
    )


def test_margin():
    probs = np.array([[0.1, 0.7, 0.2], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    assert margin(probs) == pytest.approx([0.5, 1.0, 0.0])


def test_aggregation():
    values = np.array([0.2, 0.5, 0.8])
    assert aggregate_boxes(values, "max") == pytest.approx(0.8)
    assert aggregate_boxes(values, "mean") == pytest.approx(0.5)
    assert aggregate_boxes(values, "sum") == pytest.approx(1.5)
    with pytest.raises(ValueError):
        aggregate_boxes(values, "median")


def test_localization_identical_disjoint_and_half_overlap():
    boxes = np.array([[0, 0, 10, 10], [100, 100, 110, 110], [50, 0, 60, 10]], dtype=float)
    assert localization_instability(boxes, boxes) == pytest.approx([0, 0, 0])
    far = boxes + 500
    assert localization_instability(boxes, far, penalty=0.7) == pytest.approx([0.7] * 3)
    # shifted by half its width: intersection 50, union 150, IoU 1/3
    shifted = np.array([[5, 0, 15, 10]], dtype=float)
    assert localization_instability(boxes[:1], shifted) == pytest.approx([2 / 3])
    # fewer flipped boxes than boxes: the unmatched one gets the penalty
    assert localization_instability(boxes[:2], boxes[1:2]) == pytest.approx([1.0, 0.0])


def test_localization_matching_is_one_to_one():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10]], dtype=float)
    flipped = np.array([[0, 0, 10, 10]], dtype=float)
    # both overlap the single flipped box, only one may claim it
    assert sorted(localization_instability(boxes, flipped)) == pytest.approx([0.0, 1.0])


def test_image_score_uses_boxes_above_threshold():
    image = detections(
        [[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]],
        [0.9, 0.6, 0.2],
        [[0.1, 0.9, 0.0], [0.4, 0.6, 0.0], [0.5, 0.25, 0.25]],
    )
    assert image_uncertainty(image, "least_confidence", "max", 0.5) == pytest.approx(0.4)
    assert image_uncertainty(image, "least_confidence", "mean", 0.5) == pytest.approx(0.25)
    assert image_uncertainty(image, "least_confidence", "sum", 0.5) == pytest.approx(0.5)


def test_image_without_confident_box_is_scored_from_best_candidate():
    image = detections(
        [[0, 0, 10, 10], [20, 20, 30, 30]],
        [0.3, 0.45],
        [[0.7, 0.3, 0.0], [0.55, 0.45, 0.0]],
    )
    assert image_uncertainty(image, "margin", threshold=0.5) == pytest.approx(1 - 0.1)
    best_entropy = -(0.55 * math.log(0.55) + 0.45 * math.log(0.45))
    assert image_uncertainty(image, "entropy", threshold=0.5) == pytest.approx(best_entropy)
    # with both boxes shown, they are aggregated
    assert image_uncertainty(image, "margin", threshold=0.25) == pytest.approx(1 - 0.1)
    assert image_uncertainty(image, "margin", threshold=0.3, aggregate="mean") == pytest.approx(
        (1 - 0.4 + 1 - 0.1) / 2
    )


def test_image_without_any_candidate_gets_the_maximum():
    empty = detections(np.zeros((0, 4)), [], np.zeros((0, 3)))
    assert image_uncertainty(empty, "entropy") == pytest.approx(math.log(3))
    assert image_uncertainty(empty, "least_confidence") == pytest.approx(2 / 3)
    assert image_uncertainty(empty, "margin") == pytest.approx(1.0)
    assert image_uncertainty(empty, "localization", tta_detections=empty, penalty=2.0) == 2.0


def test_pool_localization_uses_flipped_detections():
    original = detections([[0, 0, 10, 10]], [0.9], [[0.1, 0.9, 0.0]])
    same = detections([[0, 0, 10, 10]], [0.8], [[0.2, 0.8, 0.0]])
    moved = detections([[5, 0, 15, 10]], [0.8], [[0.2, 0.8, 0.0]])
    scores = pool_uncertainty([original, original], "localization", tta_detections=[same, moved])
    assert scores == pytest.approx([0.0, 2 / 3])
    with pytest.raises(ValueError):
        pool_uncertainty([original], "localization")

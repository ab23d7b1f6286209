import json

import numpy as np
import pytest
from PIL import Image

from ml_backend.contract import Detections
from ml_backend.evaluation import evaluate_detections
from ml_backend.phantoms import generate_dataset

CATEGORIES = [
    {"id": 1, "name": "transverse", "supercategory": "fracture"},
    {"id": 2, "name": "oblique", "supercategory": "fracture"},
]


def coco(images, annotations):
    """``images``: ids; ``annotations``: (image_id, category_id, xywh)."""
    return {
        "images": [{"id": i, "file_name": f"{i}.png", "width": 100, "height": 100} for i in images],
        "annotations": [
            {
                "id": n + 1,
                "image_id": i,
                "category_id": c,
                "bbox": list(b),
                "area": b[2] * b[3],
                "iscrowd": 0,
            }
            for n, (i, c, b) in enumerate(annotations)
        ],
        "categories": CATEGORIES,
    }


def found(*boxes):
    """Detections from (xyxy, score, label) triples."""
    xyxy = np.array([b[0] for b in boxes], dtype=np.float32).reshape(-1, 4)
    scores = np.array([b[1] for b in boxes], dtype=np.float32)
    labels = np.array([b[2] for b in boxes], dtype=np.int64)
    probs = np.zeros((len(boxes), 3), dtype=np.float32)
    probs[np.arange(len(boxes)), labels] = scores
    probs[:, 0] = 1 - scores
    return Detections(xyxy, scores, labels, probs, np.zeros(8, dtype=np.float32))


# Two fractures (images 1 and 2) and a negative image 3; six predictions, ranked:
# FP .95 (img 3), TP .9 (img 1), FP .85 (img 3), FP .8 (img 2), TP .7 (img 2), FP .6 (img 2)
HAND_TRUTH = coco([1, 2, 3], [(1, 1, (10, 10, 20, 20)), (2, 1, (50, 50, 20, 20))])
HAND_PREDICTIONS = {
    1: found(([10, 10, 30, 30], 0.9, 1)),
    2: found(([0, 0, 10, 10], 0.8, 1), ([50, 50, 70, 70], 0.7, 1), ([80, 80, 90, 90], 0.6, 1)),
    3: found(([5, 5, 25, 25], 0.95, 1), ([60, 60, 80, 80], 0.85, 1)),
}


def test_average_precision_follows_coco_101_point_interpolation():
    result = evaluate_detections(HAND_TRUTH, HAND_PREDICTIONS)
    # recall after each: 0 .5 .5 .5 1 1; precision: 0 1/2 1/3 1/4 2/5 1/3
    # interpolated (max to the right): .5 up to recall .5 (51 points), .4 above (50 points)
    expected = (51 * 0.5 + 50 * 0.4) / 101
    assert result["map50"] == pytest.approx(expected, abs=1e-6)
    assert result["map"] == pytest.approx(expected, abs=1e-6)  # exact boxes: IoU 1 everywhere
    assert result["per_category"]["transverse"]["ap50"] == pytest.approx(expected, abs=1e-6)
    assert result["per_category"]["oblique"] == {"ap": None, "ap50": None}


def test_froc_on_hand_case():
    froc = evaluate_detections(HAND_TRUTH, HAND_PREDICTIONS)["froc"]
    # operating points (FP per image, sensitivity) over 3 images:
    # (1/3, 0) (1/3, .5) (2/3, .5) (1, .5) (1, 1) (4/3, 1)
    assert froc["fp_per_image"] == [0.5, 1.0, 2.0, 4.0]
    assert froc["sensitivity"] == pytest.approx([0.5, 1.0, 1.0, 1.0])
    assert froc["mean_sensitivity"] == pytest.approx(0.875)


def test_froc_hit_needs_the_iou_threshold():
    truth = coco([1], [(1, 1, (0, 0, 10, 10))])
    half = {1: found(([5, 0, 15, 10], 0.9, 1))}  # IoU 1/3
    assert evaluate_detections(truth, half, iou_threshold=0.3)["froc"]["sensitivity"][0] == 1.0
    assert evaluate_detections(truth, half, iou_threshold=0.5)["froc"]["sensitivity"][0] == 0.0


def test_perfect_predictions_score_one(tmp_path):
    path = generate_dataset(tmp_path, n=12, size=128, seed=2)
    truth = json.loads(path.read_text())
    predictions = {image["id"]: found() for image in truth["images"]}
    for annotation in truth["annotations"]:
        x, y, w, h = annotation["bbox"]
        previous = predictions[annotation["image_id"]]
        extra = found(([x, y, x + w, y + h], 0.99, annotation["category_id"]))
        predictions[annotation["image_id"]] = Detections(
            np.concatenate([previous.boxes, extra.boxes]),
            np.concatenate([previous.scores, extra.scores]),
            np.concatenate([previous.labels, extra.labels]),
            np.concatenate([previous.class_probs, extra.class_probs]),
            extra.embedding,
        )
    result = evaluate_detections(path, predictions)
    assert result["map"] == pytest.approx(1.0)
    assert result["map50"] == pytest.approx(1.0)
    assert result["froc"]["sensitivity"] == [1.0, 1.0, 1.0, 1.0]
    assert result["image_level"]["accuracy"] == 1.0
    assert all(
        row["fp"] == 0 and row["fn"] == 0 for row in result["confusion"]["per_category"].values()
    )


def test_image_level_metrics_on_hand_case():
    truth = coco([1, 2, 3, 4], [(1, 1, (0, 0, 10, 10)), (2, 2, (0, 0, 10, 10))])
    predictions = {
        1: found(([0, 0, 10, 10], 0.9, 1)),
        2: found(([0, 0, 10, 10], 0.3, 2)),
        3: found(([0, 0, 10, 10], 0.6, 1)),
    }
    image_level = evaluate_detections(truth, predictions, score_threshold=0.5)["image_level"]
    counts = [image_level[key] for key in ("tp", "fp", "fn", "tn")]
    assert counts == [1, 1, 1, 1]
    assert image_level["accuracy"] == pytest.approx(0.5)
    assert image_level["precision"] == pytest.approx(0.5)
    assert image_level["recall"] == pytest.approx(0.5)
    assert image_level["f1"] == pytest.approx(0.5)
    # positive scores .9 .3, negative scores .6 0: 3 of 4 pairs ordered correctly
    assert image_level["auroc"] == pytest.approx(0.75)


def test_auroc_is_none_with_one_class():
    truth = coco([1, 2], [])
    result = evaluate_detections(truth, {1: found(([0, 0, 5, 5], 0.9, 1))})
    assert result["image_level"]["auroc"] is None
    assert result["map"] is None
    assert result["froc"]["sensitivity"] == [None] * 4


def test_confusion_counts_on_hand_case():
    truth = coco(
        [1, 2],
        [(1, 1, (0, 0, 20, 20)), (1, 2, (50, 50, 20, 20)), (2, 1, (0, 0, 20, 20))],
    )
    predictions = {
        1: found(
            ([0, 0, 20, 20], 0.9, 2),  # transverse called oblique
            ([50, 50, 70, 70], 0.8, 2),  # oblique found
            ([80, 0, 95, 15], 0.5, 1),  # nothing there
            ([80, 80, 95, 95], 0.1, 1),  # below the confidence: ignored
        ),
        2: found(([10, 0, 30, 20], 0.7, 1)),  # IoU 1/3 < 0.45: a miss and a false alarm
    }
    confusion = evaluate_detections(truth, predictions)["confusion"]
    assert confusion["labels"] == ["transverse", "oblique", "background"]
    assert confusion["matrix"] == [[0, 0, 2], [1, 1, 0], [1, 0, 0]]
    assert confusion["per_category"] == {
        "transverse": {"tp": 0, "fp": 2, "fn": 2},
        "oblique": {"tp": 1, "fp": 1, "fn": 0},
    }


def test_no_predictions_gives_zero_not_a_crash(tmp_path):
    truth = coco([1, 2], [(1, 1, (0, 0, 10, 10))])
    result = evaluate_detections(truth, {}, pr_curve_path=tmp_path / "pr.png")
    assert result["map"] == 0.0 and result["map50"] == 0.0
    assert result["per_category"]["transverse"]["ap"] == 0.0
    assert result["froc"]["sensitivity"] == [0.0] * 4
    assert result["image_level"]["recall"] == 0.0
    assert (tmp_path / "pr.png").is_file()


def test_pr_curve_png_and_json(tmp_path):
    path = tmp_path / "curves" / "pr.png"
    result = evaluate_detections(HAND_TRUTH, HAND_PREDICTIONS, pr_curve_path=path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        assert image.size == (500, 400)
    assert result["pr_curve"] == str(path)
    json.dumps(result, allow_nan=False)


def test_rejects_predictions_for_unknown_images():
    with pytest.raises(ValueError):
        evaluate_detections(HAND_TRUTH, {99: found()})

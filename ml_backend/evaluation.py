"""Detection metrics on a ground-truth COCO file, as one JSON-able dict.

- COCO box metrics (pycocotools ``COCOeval``, every prediction, at most 100 per image):
  mAP@[.5:.95], mAP50, mAP75, and AP / AP50 per category. A category without ground
  truth has no AP (None). With ground truth but no predictions at all, APs are 0.
- FROC, lesion level and class-agnostic (a fracture found under the wrong type still
  counts as found): predictions are matched greedily in descending score, each to the
  unmatched ground-truth box of highest IoU in its image if that IoU >= ``iou_threshold``;
  other predictions (duplicates included) are false positives. Sweeping the score
  threshold gives (false positives per image, sensitivity) operating points, one per
  distinct score; the sensitivity reported at a rate ``f`` is the best among operating
  points with at most ``f`` false positives per image (a step function, no
  interpolation; 0 if none qualifies).
- Image level, "any box with score >= ``score_threshold``": the image score is its best
  box score (0 without boxes), ground truth is "has at least one box"; accuracy,
  precision, recall, F1 (0 when undefined) and AUROC (None unless both classes occur).
- A confusion matrix like YOLO's: boxes with score >= 0.25 are matched one-to-one to
  ground truth with IoU >= 0.45 regardless of class (greedy by IoU); rows are predicted
  categories then background, columns ground-truth categories then background. A
  matched pair counts at (predicted, true), an unmatched ground truth at
  (background, true), an unmatched prediction at (predicted, background).
- Optionally a precision-recall PNG from ``COCOeval``'s precision at IoU 0.5.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from sklearn.metrics import accuracy_score, precision_recall_fscore_support, roc_auc_score

from ml_backend.contract import Detections
from ml_backend.uncertainty import box_iou

FROC_FP_RATES = (0.5, 1.0, 2.0, 4.0)
CONFUSION_IOU = 0.45
CONFUSION_SCORE = 0.25


def _quietly(function, *args):
    """Run a pycocotools call without its printing."""
    with contextlib.redirect_stdout(io.StringIO()):
        return function(*args)


def load_ground_truth(gt_coco: dict | Path) -> COCO:
    """A pycocotools index of a COCO dict or file (``area``/``iscrowd`` filled in)."""
    data = json.loads(Path(gt_coco).read_text()) if isinstance(gt_coco, str | Path) else gt_coco
    data = copy.deepcopy(data)
    for annotation in data.get("annotations", []):
        annotation.setdefault("iscrowd", 0)
        annotation.setdefault("area", annotation["bbox"][2] * annotation["bbox"][3])
    coco = COCO()
    coco.dataset = data
    _quietly(coco.createIndex)
    return coco


def _xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.column_stack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]])


def _ground_truth_boxes(coco: COCO, image_id: int) -> tuple[np.ndarray, np.ndarray]:
    """``xyxy`` boxes and category ids of one image's (non-crowd) annotations."""
    annotations = [a for a in coco.imgToAnns.get(image_id, []) if not a.get("iscrowd", 0)]
    xywh = np.array([a["bbox"] for a in annotations], dtype=np.float64).reshape(-1, 4)
    boxes = np.column_stack([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]])
    return boxes, np.array([a["category_id"] for a in annotations], dtype=np.int64)


def _coco_results(predictions: dict[int, Detections]) -> list[dict[str, Any]]:
    results = []
    for image_id, found in predictions.items():
        for box, score, label in zip(
            _xyxy_to_xywh(found.boxes), found.scores, found.labels, strict=True
        ):
            results.append(
                {
                    "image_id": int(image_id),
                    "category_id": int(label),
                    "bbox": [float(c) for c in box],
                    "score": float(score),
                }
            )
    return results


def _valid(value: float) -> float | None:
    """COCOeval marks "no ground truth" with -1; JSON has no NaN."""
    value = float(value)
    return None if value < 0 or math.isnan(value) else value


def _mean_precision(precision: np.ndarray) -> float | None:
    defined = precision[precision > -1]
    return float(defined.mean()) if defined.size else None


def coco_metrics(
    coco: COCO, predictions: dict[int, Detections]
) -> tuple[dict[str, Any], np.ndarray | None]:
    """COCO APs, and ``COCOeval``'s precision array (None without predictions)."""
    results = _coco_results(predictions)
    if not results:
        # pycocotools cannot load an empty result list; nothing found means AP 0
        # wherever there was something to find.
        per_category = {}
        for category in coco.loadCats(coco.getCatIds()):
            ap = 0.0 if coco.getAnnIds(catIds=[category["id"]], iscrowd=False) else None
            per_category[category["name"]] = {"ap": ap, "ap50": ap}
        overall = 0.0 if coco.getAnnIds(iscrowd=False) else None
        return {
            "map": overall,
            "map50": overall,
            "map75": overall,
            "per_category": per_category,
        }, None

    evaluator = COCOeval(coco, _quietly(coco.loadRes, results), "bbox")
    _quietly(evaluator.evaluate)
    _quietly(evaluator.accumulate)
    _quietly(evaluator.summarize)
    # precision is indexed [IoU, recall, category, area range, max detections]
    precision = evaluator.eval["precision"][:, :, :, 0, -1]
    per_category = {
        category["name"]: {
            "ap": _mean_precision(precision[:, :, k]),
            "ap50": _mean_precision(precision[0, :, k]),
        }
        for k, category in enumerate(coco.loadCats(evaluator.params.catIds))
    }
    stats = evaluator.stats
    summary = {"map": _valid(stats[0]), "map50": _valid(stats[1]), "map75": _valid(stats[2])}
    return {**summary, "per_category": per_category}, precision


def _match_greedily(iou: np.ndarray, threshold: float) -> list[int | None]:
    """For each prediction (rows, already in descending score), the ground truth it
    claims: the unclaimed one of highest IoU >= ``threshold``, else None."""
    claimed = np.zeros(iou.shape[1], dtype=bool)
    matches: list[int | None] = []
    for row in iou:
        candidates = np.where(~claimed & (row >= threshold), row, -1.0)
        best = int(np.argmax(candidates)) if candidates.size else -1
        if best >= 0 and candidates[best] >= 0:
            claimed[best] = True
            matches.append(best)
        else:
            matches.append(None)
    return matches


def froc(
    coco: COCO,
    predictions: dict[int, Detections],
    iou_threshold: float = 0.5,
    fp_rates: tuple[float, ...] = FROC_FP_RATES,
) -> dict[str, Any]:
    """Lesion-level FROC sensitivities at ``fp_rates`` false positives per image."""
    image_ids = coco.getImgIds()
    scores, hits, n_truth = [], [], 0
    for image_id in image_ids:
        truth, _ = _ground_truth_boxes(coco, image_id)
        n_truth += len(truth)
        found = predictions.get(image_id)
        if found is None or len(found.scores) == 0:
            continue
        order = np.argsort(-found.scores, kind="stable")
        matches = _match_greedily(box_iou(found.boxes[order], truth), iou_threshold)
        scores.extend(found.scores[order].tolist())
        hits.extend(match is not None for match in matches)

    sensitivities: list[float | None]
    if n_truth == 0:
        sensitivities = [None] * len(fp_rates)
    else:
        order = np.argsort(-np.asarray(scores), kind="stable")
        ranked_scores = np.asarray(scores)[order]
        true_positives = np.cumsum(np.asarray(hits, dtype=bool)[order])
        false_positives = np.arange(1, len(order) + 1) - true_positives
        # one operating point per distinct score: the last prediction at that score
        last_of_score = np.r_[ranked_scores[1:] != ranked_scores[:-1], True] if len(order) else []
        fp_per_image = false_positives[last_of_score] / max(len(image_ids), 1)
        sensitivity = true_positives[last_of_score] / n_truth
        sensitivities = [
            float(sensitivity[fp_per_image <= rate].max(initial=0.0)) for rate in fp_rates
        ]
    defined = [s for s in sensitivities if s is not None]
    return {
        "iou_threshold": iou_threshold,
        "fp_per_image": list(fp_rates),
        "sensitivity": sensitivities,
        "mean_sensitivity": float(np.mean(defined)) if defined else None,
    }


def image_level_metrics(
    coco: COCO, predictions: dict[int, Detections], score_threshold: float = 0.5
) -> dict[str, Any]:
    """Fracture / no-fracture per image from "any box with score >= threshold"."""
    image_ids = coco.getImgIds()
    truth = np.array([len(_ground_truth_boxes(coco, i)[0]) > 0 for i in image_ids], dtype=int)
    scores = np.array(
        [
            float(predictions[i].scores.max())
            if i in predictions and len(predictions[i].scores)
            else 0.0
            for i in image_ids
        ]
    )
    predicted = (scores >= score_threshold).astype(int)
    precision, recall, f1, _ = precision_recall_fscore_support(
        truth, predicted, average="binary", zero_division=0
    )
    both_classes = len(np.unique(truth)) == 2
    return {
        "score_threshold": score_threshold,
        "accuracy": float(accuracy_score(truth, predicted)) if len(truth) else None,
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "auroc": float(roc_auc_score(truth, scores)) if both_classes else None,
        "tp": int(((predicted == 1) & (truth == 1)).sum()),
        "fp": int(((predicted == 1) & (truth == 0)).sum()),
        "fn": int(((predicted == 0) & (truth == 1)).sum()),
        "tn": int(((predicted == 0) & (truth == 0)).sum()),
    }


def confusion(
    coco: COCO,
    predictions: dict[int, Detections],
    iou_threshold: float = CONFUSION_IOU,
    score_threshold: float = CONFUSION_SCORE,
) -> dict[str, Any]:
    """YOLO-style confusion matrix (see module) and TP / FP / FN per category."""
    categories = coco.loadCats(coco.getCatIds())
    column = {c["id"]: k for k, c in enumerate(categories)}
    background = len(categories)
    matrix = np.zeros((background + 1, background + 1), dtype=int)
    for image_id in coco.getImgIds():
        truth, truth_labels = _ground_truth_boxes(coco, image_id)
        found = predictions.get(image_id)
        if found is not None:
            keep = found.scores >= score_threshold
            boxes, labels = found.boxes[keep], found.labels[keep]
        else:
            boxes, labels = np.zeros((0, 4)), np.zeros(0, dtype=np.int64)
        unknown = set(labels.tolist()) - set(column)
        if unknown:
            raise ValueError(
                f"predicted category ids {sorted(unknown)} are not in the ground truth"
            )
        iou = box_iou(boxes, truth)
        pairs = sorted(zip(*np.nonzero(iou >= iou_threshold), strict=True), key=lambda p: -iou[p])
        used_pred, used_truth = set(), set()
        for p, t in pairs:
            if p not in used_pred and t not in used_truth:
                used_pred.add(p)
                used_truth.add(t)
                matrix[column[labels[p]], column[truth_labels[t]]] += 1
        for t in set(range(len(truth))) - used_truth:
            matrix[background, column[truth_labels[t]]] += 1
        for p in set(range(len(boxes))) - used_pred:
            matrix[column[labels[p]], background] += 1
    per_category = {
        c["name"]: {
            "tp": int(matrix[k, k]),
            "fp": int(matrix[k, :].sum() - matrix[k, k]),
            "fn": int(matrix[:, k].sum() - matrix[k, k]),
        }
        for k, c in enumerate(categories)
    }
    return {
        "iou_threshold": iou_threshold,
        "score_threshold": score_threshold,
        "labels": [c["name"] for c in categories] + ["background"],
        "matrix": matrix.tolist(),  # rows predicted, columns ground truth
        "per_category": per_category,
    }


def plot_pr_curves(coco: COCO, precision: np.ndarray | None, path: Path) -> None:
    """Precision against recall at IoU 0.5, one line per category with ground truth."""
    figure = Figure(figsize=(5, 4), dpi=100)
    axes = figure.add_subplot()
    recall = np.linspace(0.0, 1.0, 101)
    for k, category in enumerate(coco.loadCats(coco.getCatIds())):
        if precision is None or (precision[0, :, k] < 0).all():
            continue
        ap50 = _mean_precision(precision[0, :, k])
        axes.plot(
            recall,
            np.clip(precision[0, :, k], 0, None),
            label=f"{category['name']} AP50={ap50:.3f}",
        )
    if precision is None:
        axes.text(0.5, 0.5, "no predictions", ha="center", va="center")
    axes.set(
        xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.05), title="PR at IoU 0.5"
    )
    if axes.get_legend_handles_labels()[0]:
        axes.legend(loc="lower left")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")


def evaluate_detections(
    gt_coco: dict | Path,
    predictions: dict[int, Detections],
    score_threshold: float = 0.5,
    iou_threshold: float = 0.5,
    pr_curve_path: Path | None = None,
) -> dict[str, Any]:
    """All metrics of ``predictions`` (keyed by COCO image id; a missing image has no
    boxes) against ``gt_coco``. ``iou_threshold`` is FROC's hit criterion,
    ``score_threshold`` the image-level operating point."""
    coco = load_ground_truth(gt_coco)
    unknown = set(predictions) - set(coco.getImgIds())
    if unknown:
        raise ValueError(
            f"predictions for image ids not in the ground truth: {sorted(unknown)[:10]}"
        )
    box_metrics, precision = coco_metrics(coco, predictions)
    if pr_curve_path is not None:
        plot_pr_curves(coco, precision, Path(pr_curve_path))
    return {
        "n_images": len(coco.getImgIds()),
        "n_ground_truth": len(coco.getAnnIds(iscrowd=False)),
        "n_predictions": int(sum(len(d.scores) for d in predictions.values())),
        **box_metrics,
        "froc": froc(coco, predictions, iou_threshold),
        "image_level": image_level_metrics(coco, predictions, score_threshold),
        "confusion": confusion(coco, predictions),
        "pr_curve": str(pr_curve_path) if pr_curve_path is not None else None,
    }

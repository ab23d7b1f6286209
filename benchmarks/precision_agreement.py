"""What ``inference_precision="bfloat16"`` changes in a trained model's detections.

    python benchmarks/precision_agreement.py --weights var/cli/mobilenet-256.pt \\
        --coco var/cli/val/annotations.json

Predicts the COCO file's images with the checkpoint twice, in float32 and in bfloat16
(``ml_backend/engines/precision.py``), and reports for each precision the evaluation
metrics (mAP50, COCO mAP, FROC, image-level AUROC), and between them how the boxes agree:
the share of float32 boxes scoring at least ``--min-score`` that bfloat16 finds again
(same class, IoU >= 0.9) and how far their scores and edges moved. Both precisions are
timed on the same images, interleaved. Prints the figures and writes
``benchmarks/results/precision_agreement.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from ml_backend.coco_dataset import load_coco, load_samples, read_image
from ml_backend.contract import Detections
from ml_backend.engines.precision import PRECISIONS, native_bfloat16
from ml_backend.evaluation import evaluate_detections
from ml_backend.registry import load_engine
from ml_backend.uncertainty import box_iou

RESULTS = Path(__file__).parent / "results" / "precision_agreement.json"
SAME_BOX_IOU = 0.9


def agreement(exact: list[Detections], approx: list[Detections], min_score: float) -> dict:
    """How many of ``exact``'s boxes scoring >= ``min_score`` ``approx`` has too (same
    label, IoU >= 0.9 with its best such box), and how much those moved."""
    total, found, score_shifts, edge_shifts = 0, 0, [], []
    for a, b in zip(exact, approx, strict=True):
        for box, score, label in zip(a.boxes, a.scores, a.labels, strict=True):
            if score < min_score:
                continue
            total += 1
            same = np.flatnonzero(b.labels == label)
            if not len(same):
                continue
            ious = box_iou(box[None], b.boxes[same])[0]
            best = same[int(np.argmax(ious))]
            if ious.max() >= SAME_BOX_IOU:
                found += 1
                score_shifts.append(abs(float(b.scores[best] - score)))
                edge_shifts.append(float(np.abs(b.boxes[best] - box).max()))
    return {
        "min_score": min_score,
        "boxes": total,
        "found_again": found,
        "found_share": round(found / total, 4) if total else None,
        "score_shift_median": round(float(np.median(score_shifts)), 5) if score_shifts else None,
        "score_shift_max": round(max(score_shifts), 5) if score_shifts else None,
        "edge_shift_px_median": round(float(np.median(edge_shifts)), 3) if edge_shifts else None,
        "edge_shift_px_max": round(max(edge_shifts), 3) if edge_shifts else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--coco", type=Path, required=True)
    parser.add_argument("--images", type=Path, help="image folder (default: images/ beside --coco)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-score", type=float, default=0.05)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    samples = load_samples(load_coco(args.coco), args.images or args.coco.parent / "images")
    images = [read_image(s.path) for s in samples]
    engines = {p: load_engine(args.weights, num_threads=args.threads, inference_precision=p) for p in PRECISIONS}
    found: dict[str, list[Detections]] = {p: [] for p in PRECISIONS}
    seconds: dict[str, float] = dict.fromkeys(PRECISIONS, 0.0)
    for engine in engines.values():  # first call: kernels built for the shape
        engine.predict(images[:1])
    for image in images:
        for precision, engine in engines.items():
            started = time.perf_counter()
            found[precision].extend(engine.predict([image]))
            seconds[precision] += time.perf_counter() - started

    metrics = {}
    for precision in PRECISIONS:
        by_id = {s.image_id: d for s, d in zip(samples, found[precision], strict=True)}
        m = evaluate_detections(args.coco, by_id)
        metrics[precision] = {
            "map50": m["map50"], "map": m["map"], "froc_sensitivity": m["froc"]["sensitivity"],
            "image_auroc": m["image_level"]["auroc"],
            "s_per_image": round(seconds[precision] / len(images), 4),
        }
    result = {
        "note": "synthetic phantoms",
        "weights": str(args.weights),
        "coco": str(args.coco),
        "images": len(images),
        "native_bfloat16": native_bfloat16(),
        "metrics": metrics,
        "agreement": agreement(found["float32"], found["bfloat16"], args.min_score),
    }
    print(json.dumps(result, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

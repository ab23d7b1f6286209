"""``benchmarks/precision_agreement.py``: box agreement on a hand-built case, and a run on
a small checkpoint that writes both precisions' metrics."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from ml_backend.contract import Detections
from ml_backend.registry import get_engine
from tests.tiny_engine import TINY_TORCHVISION

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "precision_agreement.py"


def load_script():
    spec = importlib.util.spec_from_file_location("precision_agreement", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def detections(boxes, scores, labels) -> Detections:
    n = len(scores)
    return Detections(
        boxes=np.asarray(boxes, np.float32).reshape(n, 4), scores=np.asarray(scores, np.float32),
        labels=np.asarray(labels, np.int64), class_probs=np.full((n, 3), 1 / 3, np.float32),
        embedding=np.zeros(4, np.float32),
    )


def test_agreement_counts_boxes_found_again_and_how_far_they_moved():
    exact = [detections([[0, 0, 100, 100], [200, 200, 300, 300], [0, 0, 50, 50], [400, 400, 420, 420]],
                        [0.9, 0.8, 0.6, 0.01], [1, 1, 2, 1])]
    approx = [detections([[0, 0, 100, 101], [200, 200, 300, 300], [0, 0, 50, 50]],
                         [0.88, 0.8, 0.6], [1, 2, 1])]
    result = load_script().agreement(exact, approx, min_score=0.05)
    # the 0.01 box is below min_score; the second and third changed class
    assert result["boxes"] == 3 and result["found_again"] == 1
    assert result["found_share"] == round(1 / 3, 4)
    assert result["score_shift_max"] == 0.02 and result["edge_shift_px_max"] == 1.0


def test_a_run_on_a_checkpoint_reports_both_precisions(phantom_coco, tmp_path):
    weights = tmp_path / "random.pt"
    get_engine("torchvision", category_ids=[1, 2], **TINY_TORCHVISION).save(weights)
    out = tmp_path / "agreement.json"
    subprocess.run(
        [sys.executable, str(SCRIPT), "--weights", str(weights), "--coco", str(phantom_coco), "--out", str(out)],
        cwd=ROOT, check=True, timeout=300, capture_output=True,
    )
    result = json.loads(out.read_text())
    assert result["images"] == 16
    for precision in ("float32", "bfloat16"):
        metrics = result["metrics"][precision]
        assert 0.0 <= metrics["map50"] <= 1.0 and len(metrics["froc_sensitivity"]) == 4
        assert metrics["s_per_image"] > 0
    agreement = result["agreement"]
    # something was compared, and bfloat16 found some of float32's boxes again: a broken
    # bfloat16 path (or an empty comparison) fails here
    assert agreement["boxes"] > 0 and agreement["found_again"] > 0
    assert agreement["found_share"] == round(agreement["found_again"] / agreement["boxes"], 4)

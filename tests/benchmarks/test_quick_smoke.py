"""The issue-7 benchmarks run end to end in their ``--quick`` mode and write well-formed
figures. Latency figures are the benchmarks' job; correctness is checked here: the load
run must lose and duplicate no write (the script exits 1 otherwise, issue 16)."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_quick(script: str, *args: str) -> None:
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--quick", *args],
                   cwd=ROOT, check=True, timeout=300, capture_output=True)


def numbers(value):
    """Every number inside a JSON value."""
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from numbers(item)
    elif isinstance(value, list):
        for item in value:
            yield from numbers(item)


@pytest.mark.slow
def test_active_learning_quick_writes_curves_and_plot(tmp_path):
    run_quick("active_learning.py", "--results", str(tmp_path), "--plots", str(tmp_path))

    result = json.loads((tmp_path / "active_learning-quick.json").read_text())
    assert result["seeds_completed"] == 1
    assert set(result["strategies"]) == {"random", "ranked_batch"}
    for entry in result["strategies"].values():
        assert entry["labels"] == [4, 8, 12]
        for key in ("map50_mean", "map50_std", "froc_2fp_mean", "froc_2fp_std"):
            assert len(entry[key]) == 3
        assert "aulc_map50_mean" in entry and "labels_to_random_final" in entry
    rounds = result["incremental_vs_scratch"]["rounds"]
    assert [r["round"] for r in rounds] == [1, 2]
    assert all(r["incremental_s"] > 0 and r["scratch_s"] > 0 for r in rounds)
    assert all(math.isfinite(x) for x in numbers(result))
    assert (tmp_path / "active_learning-quick.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_load_quick_reports_latency_and_reconciles(tmp_path):
    run_quick("load.py", "--results", str(tmp_path), "--database", "fracture_load_smoke")

    result = json.loads((tmp_path / "load-quick.json").read_text())
    for name in ("POST next", "GET image", "PATCH box PATCH", "Aggregated"):
        assert {"requests", "p50_ms", "p95_ms", "p99_ms"} <= set(result["endpoints"][name])
    reconciliation = result["reconciliation"]
    assert reconciliation["acknowledged_saves"] > 0
    assert reconciliation["lost"] == 0 and reconciliation["duplicated_revisions"] == 0
    assert reconciliation["acknowledged_twice"] == 0
    assert reconciliation["collisions_answered_409"] == reconciliation["intended_collisions"]
    assert result["targets"]["zero_5xx"] and result["targets"]["no_lost_or_duplicated"]
    assert all(math.isfinite(x) for x in numbers(result))


def load_module():
    spec = importlib.util.spec_from_file_location("load_benchmark", ROOT / "benchmarks" / "load.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("broken", "message"),
    [("zero_5xx", "5xx"), ("no_lost_or_duplicated", "lost or written twice"), ("every_collision_409", "409")],
)
def test_load_fails_when_a_write_is_lost_or_duplicated(broken, message):
    targets = {"zero_5xx": True, "no_lost_or_duplicated": True, "every_collision_409": True, "save_p95_met": False}
    check = load_module().broken_guarantees
    assert check({"targets": targets}) == []  # a slow run is reported, not failed
    (failure,) = check({"targets": {**targets, broken: False}})
    assert message in failure

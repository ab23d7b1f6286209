"""``benchmarks/gpu_check.py`` runs end to end in its ``--quick`` mode (on the CPU here)
and refuses an absent GPU before training. Only the shape of the figures is checked:
the numbers are the benchmark's job."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, timeout=600,
                          capture_output=True, text=True)


@pytest.mark.slow
def test_quick_run_writes_a_row_per_device(tmp_path):
    out = tmp_path / "gpu_check.json"
    done = run("--quick", "--threads", "2", "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]

    result = json.loads(out.read_text())
    devices = ["cpu", *(["cuda:0"] if torch.cuda.is_available() else [])]
    assert [(r["dataset"], r["device"]) for r in result["rows"]] == [("phantoms", d) for d in devices]
    assert result["cuda_available"] == torch.cuda.is_available() and result["iterations"] == 4
    cpu = result["rows"][0]
    assert cpu["precision"] == "float32" and cpu["peak_gpu_mib"] is None and cpu["device_name"]
    assert cpu["iterations"] == 4 and cpu["s_per_iteration"] > 0 and cpu["infer_s_per_image"] > 0
    assert 0.0 <= cpu["val_map50"] <= 1.0 and math.isfinite(cpu["final_loss"])
    assert "phantoms   cpu      float32" in done.stdout, "the side-by-side table is printed"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
def test_an_absent_gpu_is_refused_before_training(tmp_path):
    done = run("--quick", "--devices", "cpu,cuda:0", "--out", str(tmp_path / "x.json"))
    assert done.returncode == 2
    assert "device 'cuda:0' asked for, but CUDA is not available" in done.stderr
    assert "measured" not in done.stdout and not (tmp_path / "x.json").exists()

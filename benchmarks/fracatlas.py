#!/usr/bin/env python
"""Fracture detection on real radiographs: FracAtlas, the authors' detection split.

    .venv/bin/python benchmarks/fracatlas.py --data ../shared/data/fracatlas            # <= 60 min
    .venv/bin/python benchmarks/fracatlas.py --data ../shared/data/fracatlas --quick    # smoke test

Data: the fractured images of ``split/{train,valid,test}.csv`` (574 / 82 / 61) and their
boxes from ``Annotations/COCO JSON/COCO_fracture_masks.json``. FracAtlas (Abedeen et al.,
Scientific Data 10, 521, 2023) is CC BY 4.0; cite it where its figures are shown. Without
the data the benchmark says so and exits 0.

Training goes through the platform's own code (``engine.train``: replay sampling,
augmentation, early stop on validation mAP50, a wall-clock limit) from ImageNet
EfficientNet-Lite0 (``init=imagenet``). Metrics on the test split: pycocotools mAP50 and
mAP, precision and recall at confidence 0.25 and IoU 0.45 (the operating point of the
FracAtlas paper's confusion matrix), FROC sensitivity at 1, 2 and 4 false positives per
image, and validation mAP50 against wall time. Saves ``benchmarks/results/fracatlas[-quick]``
``.json``, ``-curve.png`` and ``-test.png`` (12 test images, ground truth green,
predictions at confidence >= 0.25 red); a full run also copies the PNGs to docs/benchmarks/.

Pitfalls of the data, handled in ``prepare``:

- the only category and the first annotation have **id 0**: pycocotools records a match
  by ground-truth id and takes 0 for "unmatched", so a detection matching annotation 0
  would count as a false positive. Categories, images and annotations are renumbered
  from 1;
- ``IMG0002628.jpg`` carries EXIF orientation 8 and the COCO file gives its rotated size
  (the annotators drew on the image as viewers show it): images are turned by their
  EXIF orientation, and a size that then differs from the COCO entry stops the run;
- some JPEGs are truncated by a few bytes (24 non-fractured ones in this copy): they are
  decoded as far as they go and listed in the results;
- boxes are about 1 % of the image side (median 28 x 30 px at 2304 x 2880): images are
  decoded at the training size once (JPEG draft mode, then an exact resize) and cached
  under var/benchmarks/fracatlas/, boxes scaled with them; the model sees the same
  pixels it would after its own resize, without decoding 6-megapixel JPEGs every
  iteration.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs" / "benchmarks"
COCO_FILE = Path("Annotations") / "COCO JSON" / "COCO_fracture_masks.json"
SPLITS = ("train", "valid", "test")
SHOWN = 12
SHOW_SCORE = 0.25

from ml_backend.contract import Progress, Snapshot  # noqa: E402
from ml_backend.evaluation import evaluate_detections  # noqa: E402
from ml_backend.registry import get_engine  # noqa: E402


def split_names(data: Path, split: str) -> list[str]:
    with open(data / "split" / f"{split}.csv", newline="") as handle:
        return [row["image_id"] for row in csv.DictReader(handle)]


def decode(path: Path, size: int) -> tuple[Image.Image, bool]:
    """The image turned by its EXIF orientation, in grayscale, decoded near ``size`` on
    the shorter side; and whether the file was truncated."""
    try:
        return _decode(path, size), False
    except OSError as exc:
        if "truncated" not in str(exc):
            raise
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        return _decode(path, size), True
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False


def _decode(path: Path, size: int) -> Image.Image:
    with Image.open(path) as image:
        width, height = image.size
        scale = size / min(width, height)
        image.draft("L", (max(1, round(width * scale)), max(1, round(height * scale))))
        return ImageOps.exif_transpose(image.convert("L"))


def prepare(data: Path, work: Path, size: int, limits: dict[str, int] | None) -> dict:
    """COCO files of the three splits (ids renumbered from 1) over images resized to
    ``size`` on the shorter side; returns what was done, for the results."""
    coco = json.loads((data / COCO_FILE).read_text())
    by_name = {image["file_name"]: image for image in coco["images"]}
    boxes: dict[int, list[dict]] = {}
    for annotation in coco["annotations"]:
        boxes.setdefault(annotation["image_id"], []).append(annotation)
    images_dir = work / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    report = {"truncated": [], "exif_turned": [], "images": {}, "boxes": {}}
    for split in SPLITS:
        names = split_names(data, split)[: (limits or {}).get(split)]
        out = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "fractured"}]}
        for image_id, name in enumerate(names, start=1):
            entry = by_name[name]
            target = images_dir / f"{Path(name).stem}.png"
            source = data / "images" / "Fractured" / name
            if not target.exists():
                image, truncated = decode(source, size)
                if (image.width > image.height) != (entry["width"] > entry["height"]):
                    raise SystemExit(f"{source}: turned by its EXIF orientation it is {image.size} "
                                     f"(decoded scaled), the COCO file says {entry['width']}x{entry['height']}")
                scale = size / min(entry["width"], entry["height"])
                resized = image.resize((round(entry["width"] * scale), round(entry["height"] * scale)),
                                       Image.Resampling.BILINEAR)
                resized.save(target)
                if truncated:
                    report["truncated"].append(name)
            with Image.open(source) as original:
                if original.getexif().get(0x0112, 1) != 1:
                    report["exif_turned"].append(name)
            with Image.open(target) as stored:
                width, height = stored.size
            sx, sy = width / entry["width"], height / entry["height"]
            out["images"].append({"id": image_id, "file_name": target.name, "width": width, "height": height})
            for annotation in boxes.get(entry["id"], []):
                x, y, w, h = annotation["bbox"]
                out["annotations"].append({
                    "id": len(out["annotations"]) + 1, "image_id": image_id, "category_id": 1,
                    "bbox": [x * sx, y * sy, w * sx, h * sy], "area": w * sx * h * sy, "iscrowd": 0,
                })
        (work / f"{split}.json").write_text(json.dumps(out))
        report["images"][split] = len(out["images"])
        report["boxes"][split] = len(out["annotations"])
    return report


def settings(args: argparse.Namespace) -> dict:
    """The engine config of the run."""
    config = {
        "architecture": args.arch, "init": "imagenet", "min_size": args.size, "max_size": args.size * 2,
        "anchor_sizes": args.anchor_sizes, "batch_size": args.batch_size, "optimizer": "adamw", "lr": args.lr,
        "warmup_iters": args.warmup, "eval_every": args.eval_every, "early_stop_patience": args.patience,
        "time_limit_s": args.minutes * 60, "num_threads": args.threads, "seed": args.seed,
        "aug_vflip": True, "rpn_proposals_test": 300,
    }
    if args.frozen_stages is not None:
        config["frozen_stages"] = args.frozen_stages
    return config


def test_predictions(engine, annotations: Path, images_dir: Path) -> dict:
    from ml_backend.coco_dataset import load_coco, load_pixels, load_samples

    samples = load_samples(load_coco(annotations), images_dir)
    found = {}
    for start in range(0, len(samples), 4):
        chunk = samples[start : start + 4]
        found.update(zip([s.image_id for s in chunk], engine.predict([load_pixels(s) for s in chunk]), strict=True))
    return found


def plot_curve(curve: list[dict], path: Path) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 3.5), layout="constrained")
    axes = figure.add_subplot()
    axes.plot([p["minutes"] for p in curve], [p["val_map50"] for p in curve], marker="o")
    axes.set(xlabel="wall time (min)", ylabel="validation mAP50", title="FracAtlas, ImageNet Lite0 start")
    axes.grid(alpha=0.3)
    figure.savefig(path, dpi=120)


def plot_test_images(annotations: Path, images_dir: Path, predictions: dict, path: Path) -> None:
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    coco = json.loads(annotations.read_text())
    truth: dict[int, list] = {}
    for annotation in coco["annotations"]:
        truth.setdefault(annotation["image_id"], []).append(annotation["bbox"])
    shown = coco["images"][:SHOWN]
    figure = Figure(figsize=(16, 12), layout="constrained")
    for k, image in enumerate(shown):
        axes = figure.add_subplot(3, 4, k + 1)
        axes.imshow(np.asarray(Image.open(images_dir / image["file_name"])), cmap="gray")
        for x, y, w, h in truth.get(image["id"], []):
            axes.add_patch(Rectangle((x, y), w, h, fill=False, edgecolor="lime", linewidth=1.5))
        found = predictions[image["id"]].above(SHOW_SCORE)
        for (x0, y0, x1, y1), score in zip(found.boxes, found.scores, strict=True):
            axes.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="red", linewidth=1))
            axes.text(x0, y0, f"{score:.2f}", color="red", fontsize=7, va="bottom")
        axes.set_title(image["file_name"], fontsize=8)
        axes.axis("off")
    figure.suptitle("FracAtlas test images (CC BY 4.0): ground truth green, predictions >= 0.25 red")
    figure.savefig(path, dpi=80)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "fracatlas")
    parser.add_argument("--quick", action="store_true", help="a few images at 256 px, a few iterations")
    parser.add_argument("--minutes", type=float, default=55.0, help="training wall-clock limit")
    parser.add_argument("--size", type=int, default=512, help="shorter image side")
    parser.add_argument("--arch", default="efficientnet_lite0_fpn")
    parser.add_argument("--anchor-sizes", type=lambda v: [int(s) for s in v.split(",")], default=[8, 16, 32, 64])
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--lr", type=float, default=0.001)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--frozen-stages", type=int)
    parser.add_argument("--iterations", type=int, default=100_000, help="cap; the time limit usually stops first")
    parser.add_argument("--eval-every", type=int, default=150)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    if not (args.data / COCO_FILE).is_file():
        print(f"skipped: FracAtlas not found: no {COCO_FILE} under {args.data.resolve()} "
              "(pass --data PATH to the folder holding Annotations/, images/ and split/)")
        return
    limits = None
    if args.quick:
        limits = {"train": 16, "valid": 6, "test": 12}
        args.size, args.iterations, args.eval_every, args.minutes, args.warmup = 256, 6, 3, 30.0, 2
    name = "fracatlas-quick" if args.quick else "fracatlas"
    work = ROOT / "var" / "benchmarks" / f"{name}-{args.size}"
    started = time.monotonic()
    report = prepare(args.data, work, args.size, limits)
    prepared_s = time.monotonic() - started
    print(f"prepared {report['images']} images, {report['boxes']} boxes in {prepared_s:.0f} s", flush=True)

    config = settings(args)
    engine = get_engine("torchvision", **config)
    curve: list[dict] = []
    train_started = time.monotonic()

    def progress(p: Progress) -> None:
        if p.val_map50 is not None:
            minutes = (time.monotonic() - train_started) / 60
            curve.append({"iteration": p.iteration, "minutes": round(minutes, 2), "val_map50": round(p.val_map50, 4)})
            print(f"iteration {p.iteration} ({minutes:.1f} min): loss {p.losses['loss']:.3f}, "
                  f"val mAP50 {p.val_map50:.3f}", flush=True)

    snapshot = Snapshot(work / "train.json", work / "images", val_annotations=work / "valid.json")
    checkpoint = engine.train(snapshot, None, args.iterations, progress, work / "weights.pt")
    train_s = time.monotonic() - train_started
    predictions = test_predictions(engine, work / "test.json", work / "images")
    metrics = evaluate_detections(work / "test.json", predictions)
    operating = metrics["confusion"]["per_category"]["fractured"]
    found = operating["tp"]
    results = {
        "data": str(args.data), "quick": args.quick, "config": config, "prepare": report,
        "prepare_s": round(prepared_s, 1), "train_s": round(train_s, 1), "iterations": checkpoint.iterations,
        "s_per_iteration": round(train_s / max(checkpoint.iterations, 1), 2), "stop_reason": checkpoint.stop_reason,
        "best_val_map50": checkpoint.best_val_map50, "val_curve": curve,
        "test": {
            "map50": metrics["map50"], "map": metrics["map"],
            "precision_at_0.25_iou_0.45": found / max(found + operating["fp"], 1),
            "recall_at_0.25_iou_0.45": found / max(found + operating["fn"], 1),
            "froc": dict(zip(metrics["froc"]["fp_per_image"], metrics["froc"]["sensitivity"], strict=True)),
            "n_images": metrics["n_images"], "n_ground_truth": metrics["n_ground_truth"],
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=1) + "\n")
    plot_curve(curve, RESULTS / f"{name}-curve.png")
    plot_test_images(work / "test.json", work / "images", predictions, RESULTS / f"{name}-test.png")
    if not args.quick:
        DOCS.mkdir(parents=True, exist_ok=True)
        for suffix in ("-curve.png", "-test.png"):
            shutil.copy(RESULTS / f"{name}{suffix}", DOCS / f"{name}{suffix}")
    print(json.dumps(results["test"], indent=1))
    print(f"{checkpoint.iterations} iterations in {train_s / 60:.1f} min ({results['s_per_iteration']} s each), "
          f"saved {RESULTS / name}.json", flush=True)


if __name__ == "__main__":
    main()

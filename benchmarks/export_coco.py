#!/usr/bin/env python
"""COCO export at scale: time and peak memory for N images and M boxes.

    .venv/bin/python benchmarks/export_coco.py                     # 10,000 images, 20,000 boxes
    .venv/bin/python benchmarks/export_coco.py --boxes 50000       # the issue-7 scale
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test .venv/bin/python benchmarks/export_coco.py

Rows are bulk-inserted into a throw-away dataset (no image files are needed to export),
the export is written with the same code as ``manage.py export_coco``, and the rows are
deleted again. Prints a table and saves benchmarks/results/export_coco-<db>.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
import tracemalloc
import uuid

from _django import RESULTS, setup_django


def populate(n_images: int, n_boxes: int, seed: int = 0):
    import numpy as np

    from annotator.models import Annotation, Category, Dataset, Image, ReviewStatus, Split

    rng = np.random.default_rng(seed)
    dataset = Dataset.objects.create(name=f"benchmark-export-{uuid.uuid4().hex[:8]}")
    categories = [
        Category.objects.create(dataset=dataset, coco_id=i + 1, name=name)
        for i, name in enumerate(["transverse", "oblique"])
    ]
    splits = [Split.TRAIN, Split.VAL, Split.TEST, Split.POOL]
    Image.objects.bulk_create(
        [
            Image(dataset=dataset, file=f"datasets/{dataset.pk}/images/{i:06d}.png",
                  file_name=f"{i:06d}.png", sha256=f"{i:064x}", width=2048, height=2500,
                  bit_depth=12, window_center=2048, window_width=4096, source="coco",
                  split=splits[i % 4], status=ReviewStatus.LABELED)
            for i in range(n_images)
        ],
        batch_size=2000,
    )
    image_ids = list(dataset.images.values_list("pk", flat=True))
    owners = rng.choice(image_ids, size=n_boxes)
    xy = rng.uniform(0, 1800, size=(n_boxes, 2))
    wh = rng.uniform(10, 200, size=(n_boxes, 2))
    Annotation.objects.bulk_create(
        [
            Annotation(image_id=int(owners[i]), category=categories[i % 2], x=float(xy[i, 0]),
                       y=float(xy[i, 1]), w=float(wh[i, 0]), h=float(wh[i, 1]), source="human")
            for i in range(n_boxes)
        ],
        batch_size=5000,
    )
    return dataset


def remove(dataset) -> None:
    from annotator.models import Annotation

    Annotation.objects.filter(image__dataset=dataset).delete()
    dataset.images.all().delete()
    dataset.delete()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--boxes", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1,000 images / 2,000 boxes, one run")
    args = parser.parse_args()
    if args.quick:
        args.images, args.boxes, args.repeat = 1000, 2000, 1

    setup_django()
    from django.db import connection

    from annotator.datasets.services.coco_export import write_coco

    dataset = populate(args.images, args.boxes)
    out = RESULTS / "export_coco.tmp"
    try:
        splits = ["train", "val", "test", "pool"]
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            write_coco(dataset, splits, out)
            times.append(time.perf_counter() - started)
        # memory in a separate run: tracemalloc slows allocation down several times
        tracemalloc.start()
        write_coco(dataset, splits, out)
        peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        size_mb = out.stat().st_size / 2**20
    finally:
        out.unlink(missing_ok=True)
        remove(dataset)

    result = {
        "benchmark": "coco_export",
        "database": connection.vendor,
        "images": args.images,
        "boxes": args.boxes,
        "seconds": [round(t, 3) for t in times],
        "best_seconds": round(min(times), 3),
        "peak_python_memory_mb": round(peak_mb, 1),
        "process_max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "file_mb": round(size_mb, 1),
        "target_seconds": 5.0,
        "machine": f"{platform.node()} {platform.machine()}, {__import__('os').cpu_count()} cores",
    }
    print(f"COCO export of {args.images:,} images / {args.boxes:,} boxes on {connection.vendor}: "
          f"best {result['best_seconds']:.2f} s of {args.repeat} (target <= 5 s), "
          f"peak Python memory {result['peak_python_memory_mb']} MB (process max RSS "
          f"{result['process_max_rss_mb']} MB), file {result['file_mb']} MB")
    name = f"export_coco-{connection.vendor}-{args.images}x{args.boxes}.json"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

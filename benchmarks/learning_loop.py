#!/usr/bin/env python
"""The learning loop on the phantom demo: "train now" -> promoted version -> re-ranked pool.

    .venv/bin/python benchmarks/learning_loop.py            # the demo's data and policy
    .venv/bin/python benchmarks/learning_loop.py --quick    # 128 px, a handful of images

Runs the platform's own code with a real Celery worker process on the embedded defaults
(SQLite + filesystem broker in a fresh folder under var/benchmarks/), exactly as the demo
does. Reports the wall time from the train-now request to the promoted version, from the
promotion to the pool re-ranked with it (proposals for every sampleable image included),
and the time of one more ranking pass on its own. Saves
benchmarks/results/learning_loop[-quick].json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def wait_for(predicate, timeout: float, what: str, worker: subprocess.Popen):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if worker.poll() is not None:
            raise SystemExit(f"the worker exited while waiting for {what}")
        time.sleep(0.5)
    raise SystemExit(f"timed out waiting for {what}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--timeout", type=float, default=3600)
    args = parser.parse_args()

    var = ROOT / "var" / "benchmarks" / ("learning-loop-quick" if args.quick else "learning-loop")
    shutil.rmtree(var, ignore_errors=True)
    os.environ.update({"VAR_DIR": str(var), "SECRET_KEY": "benchmark-only-secret-key-not-for-production-0123456789abcdef"})
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "S3_BUCKET"):
        os.environ.pop(name, None)
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from annotator.datasets.services.coco_import import import_coco
    from annotator.datasets.services.membership import freeze_validation_split
    from annotator.learning.selectors import policy_of
    from annotator.learning.services.runs import request_training_run
    from annotator.learning.tasks import rank_dataset
    from annotator.management.commands.setup_demo import (
        DEMO_ITERATIONS,
        DEMO_PARTS,
        demo_engine_config,
    )
    from annotator.models import (
        ModelStatus,
        ModelVersion,
        Ranking,
        RunState,
        RunTrigger,
        TrainingRun,
    )
    from ml_backend.phantoms import generate_dataset

    call_command("migrate", verbosity=0)
    size = 128 if args.quick else 512
    parts = [(split, 6 if args.quick else count, seed, boxes) for split, count, seed, boxes in DEMO_PARTS]
    iterations = 4 if args.quick else DEMO_ITERATIONS
    for split, count, seed, with_boxes in parts:
        folder = var / "phantoms" / split
        generate_dataset(folder, count, size=size, seed=seed)
        import_coco(folder / "annotations.json", folder / "images", "loop", split=split, images_only=not with_boxes)
    from annotator.models import Dataset

    dataset = freeze_validation_split(Dataset.objects.get(name="loop"))
    policy = policy_of(dataset)
    engine = demo_engine_config()
    policy.engine_config = {**engine, "min_size": min(size, engine["min_size"]), "max_size": min(size, engine["max_size"])}
    policy.iterations = iterations
    policy.save()

    log = open(var / "worker.log", "w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo",
         "-Q", "default,inference,training", "--loglevel", "WARNING"],
        cwd=ROOT, env=os.environ.copy(), stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        started = time.perf_counter()
        run = request_training_run(dataset, RunTrigger.MANUAL)
        version = wait_for(
            lambda: ModelVersion.objects.filter(dataset=dataset, status=ModelStatus.PRODUCTION).first(),
            args.timeout, "a promoted version", worker)
        promoted = time.perf_counter()
        run.refresh_from_db()
        if run.state != RunState.SUCCEEDED:
            raise SystemExit(f"run {run.pk} ended {run.state}: {run.error}")
        first_ranking = wait_for(lambda: Ranking.objects.filter(model_version=version).first(),
                                 args.timeout, "the re-ranked pool", worker)
        reranked = time.perf_counter()
        rank_dataset.delay(dataset.pk)
        again = wait_for(lambda: Ranking.objects.filter(model_version=version).exclude(pk=first_ranking.pk).first(),
                         args.timeout, "a second ranking", worker)
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        log.close()

    run = TrainingRun.objects.get(pk=run.pk)
    sampleable = dataset.images.exclude(split__in=["val", "test"]).count()
    result = {
        "benchmark": "learning_loop",
        "mode": "quick" if args.quick else "demo",
        "image_size": size,
        "images": {split: count for split, count, _seed, _boxes in parts},
        "engine": policy.engine_config,
        "iterations": iterations,
        "train_now_to_promoted_s": round(promoted - started, 1),
        "run_training_s": round((run.finished_at - run.started_at).total_seconds(), 1),
        "promoted_to_reranked_s": round(reranked - promoted, 1),
        "predicted_images": sampleable,
        "rerank_only_s": again.seconds,
        "pool_size": again.image_count,
        "validation_map50": version.metrics.get("map50"),
        "validation_froc": version.metrics.get("froc"),
        "machine": f"{os.cpu_count()} cores, CPU only",
        "data": "synthetic phantoms",
    }
    print(json.dumps(result, indent=2))
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "learning_loop-quick.json" if args.quick else "learning_loop.json"
    (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

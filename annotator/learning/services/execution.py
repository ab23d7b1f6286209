"""What a worker does with a claimed training run (imports the ML backend: worker only).

1. Freeze a snapshot: the accepted annotations of labeled train/pool images as COCO,
   stored with its SHA-256 (the validation split is a separate COCO, never trained on).
2. Fine-tune from the production version's weights (or from scratch), reporting progress
   and heartbeats to the run row; cancel stops it at the next iteration.
3. Evaluate on the frozen validation split and register a candidate version, its weights
   written atomically into storage.
4. Apply the gate; promote when it passes.

Annotations are only read. Nothing is registered unless every step succeeds, so a killed
or crashed run leaves no half-written weights and no version.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction

from annotator.datasets.models import Image, Split
from annotator.datasets.services.coco_export import build_coco
from annotator.learning.media import local_copy, local_dataset_dir, model_pixels, storage_is_local
from annotator.learning.models import ModelVersion, PromotionKind, TrainingRun
from annotator.learning.selectors import policy_of, production_version
from annotator.learning.services.runs import (
    RunNotVisible,
    claim_run,
    end_run_with,
    mark_succeeded,
    record_progress,
)
from annotator.learning.services.versions import evaluate_gate, next_version_name, promote_version
from ml_backend.contract import Progress, Snapshot, TrainingCancelled


class NothingToTrainOn(ValueError):
    """The dataset has no labeled image with a box outside the validation split."""


def write_snapshot(run: TrainingRun, workdir: Path) -> tuple[Path, Path]:
    """Freeze the training and validation COCO files for this run; returns their paths."""
    dataset = run.dataset
    parent = run.base_version
    train = build_coco(dataset, list(Split.sampleable()), labeled_only=True,
                       new_since=parent.created_at if parent is not None else None)
    val = build_coco(dataset, [Split.VAL], labeled_only=True)
    if not train["annotations"]:
        raise NothingToTrainOn(f"dataset {dataset.name!r} has no labeled boxes outside the validation split")
    if not val["images"]:
        raise NothingToTrainOn(f"dataset {dataset.name!r} has no labeled validation images to evaluate on")
    payload = json.dumps(train, separators=(",", ":")).encode()
    run.snapshot.save(f"training/{dataset.pk}/run-{run.pk}-snapshot.json", ContentFile(payload), save=False)
    run.snapshot_sha256 = hashlib.sha256(payload).hexdigest()
    run.snapshot_images = len(train["images"])
    run.snapshot_boxes = len(train["annotations"])
    run.save(update_fields=["snapshot", "snapshot_sha256", "snapshot_images", "snapshot_boxes"])
    train_path, val_path = workdir / "train.json", workdir / "val.json"
    train_path.write_bytes(payload)
    val_path.write_text(json.dumps(val))
    return train_path, val_path


def progress_reporter(run_id: int):
    def report(progress: Progress) -> None:
        if record_progress(run_id, progress.iteration, progress.total, progress.losses):
            raise TrainingCancelled(f"run {run_id} was cancelled")

    return report


def evaluate_on_validation(engine, val_coco: dict, pr_curve: Path) -> dict:
    from ml_backend.evaluation import evaluate_detections

    images = list(Image.objects.filter(pk__in=[entry["id"] for entry in val_coco["images"]]))
    detections = engine.predict([model_pixels(image) for image in images])
    return evaluate_detections(
        val_coco, {image.pk: det for image, det in zip(images, detections, strict=True)}, pr_curve_path=pr_curve
    )


def store_weights(local_path: Path, name: str) -> str:
    """Put a finished checkpoint into storage without ever exposing a partial file:
    on the file system by temp file + fsync + rename; on S3 an object appears whole."""
    if storage_is_local():
        from ml_backend.checkpoints import atomic_write_bytes

        target = Path(default_storage.path(name))
        atomic_write_bytes(target, local_path.read_bytes())
        return name
    with open(local_path, "rb") as source:
        return default_storage.save(name, source)


def register_candidate(run: TrainingRun, checkpoint, metrics: dict, pr_curve: Path) -> ModelVersion:
    """The candidate version of this run (created once: a second call returns it)."""
    existing = ModelVersion.objects.filter(training_run=run).first()
    if existing:
        return existing
    name = next_version_name(run.dataset, checkpoint.config)
    weights_name = store_weights(checkpoint.path, f"models/{run.dataset_id}/{name}.pt")
    if pr_curve.exists():
        metrics["pr_curve"] = default_storage.save(f"models/{run.dataset_id}/{name}-pr.png", ContentFile(pr_curve.read_bytes()))
    version = ModelVersion(
        dataset=run.dataset, name=name, engine=checkpoint.engine, config=checkpoint.config,
        category_ids=list(checkpoint.category_ids), weights_sha256=checkpoint.sha256,
        parent=run.base_version, training_run=run, metrics=metrics,
    )
    version.weights.name = weights_name
    try:
        with transaction.atomic():
            version.save()
    except IntegrityError:
        default_storage.delete(weights_name)
        return ModelVersion.objects.get(training_run=run)
    return version


def execute_training_run(run_id: int) -> ModelVersion:
    """Train, evaluate, register and gate one claimed run; marks it succeeded."""
    from ml_backend.registry import get_engine

    run = TrainingRun.objects.select_related("dataset", "base_version").get(pk=run_id)
    policy = policy_of(run.dataset)
    workdir = Path(tempfile.mkdtemp(prefix=f"training-run-{run.pk}-"))
    try:
        train_path, val_path = write_snapshot(run, workdir)
        images_dir = local_dataset_dir(run.dataset, [i["file_name"] for i in json.loads(train_path.read_text())["images"]])
        engine = get_engine(policy.engine, **{**policy.engine_config, "time_limit_s": policy.time_limit_seconds})
        init_weights = local_copy(run.base_version.weights.name) if run.base_version else None
        checkpoint = engine.train(
            Snapshot(annotations=train_path, images_dir=images_dir, val_annotations=val_path),
            init_weights,
            policy.iterations,
            progress_reporter(run.pk),
            out_path=workdir / "weights.pt",
        )
        metrics = evaluate_on_validation(engine, json.loads(val_path.read_text()), workdir / "pr.png")
        version = register_candidate(run, checkpoint, metrics, workdir / "pr.png")
        decision = evaluate_gate(version, production_version(run.dataset), policy)
        # One commit: nobody sees a succeeded run whose passing version is not yet promoted.
        with transaction.atomic():
            ModelVersion.objects.filter(pk=version.pk).update(gate_passed=decision.passed, gate_reason=decision.reason)
            if decision.passed:
                promote_version(version, kind=PromotionKind.GATE, reason=decision.reason)
            device = " ".join(filter(None, (checkpoint.device, f"({checkpoint.device_name})" if checkpoint.device_name else "")))
            mark_succeeded(run.pk, stop_reason=checkpoint.stop_reason or "", device=device)
        return version
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def carry_out_run(run_id: int, task_id: str = "") -> str:
    """A worker's whole job for one delivered run: claim it, train, register, gate, and
    finish it in the state its end calls for. Raises ``RunNotVisible`` when the run's
    row is not committed yet (the caller retries); a run someone else has is left alone."""
    if not claim_run(run_id, task_id):
        if not TrainingRun.objects.filter(pk=run_id).exists():
            raise RunNotVisible(f"run {run_id} is not committed yet")
        return f"run {run_id} is not queued: nothing to do"
    try:
        version = execute_training_run(run_id)
    except Exception as error:  # noqa: BLE001 - every end is stored on the run row
        return f"run {run_id} {end_run_with(run_id, error)}"
    return f"run {run_id} produced {version.name}"

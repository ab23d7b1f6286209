"""Registering weights an admin brings from a local file (worker or CLI: imports torch).

The file is read with ``torch.load(weights_only=True)`` by the ML backend: a pickle with
code in it is refused, never executed. The weights must fit the dataset's categories.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from annotator.datasets.models import Dataset, Split
from annotator.datasets.services.coco_export import build_coco
from annotator.learning.models import ModelVersion
from annotator.learning.selectors import policy_of, production_version
from annotator.learning.services.execution import evaluate_on_validation, store_weights
from annotator.learning.services.versions import evaluate_gate, next_version_name


class WeightsRefused(ValueError):
    """The file cannot be registered; the message names it and says why."""


def register_weights(
    dataset: Dataset, path: Path, *, engine: str = "torchvision", architecture: str | None = None,
    evaluate: bool = True, actor=None,
) -> ModelVersion:
    from ml_backend.checkpoints import CheckpointError, is_checkpoint, read_weights, sha256_file
    from ml_backend.registry import EngineUnavailable, get_engine

    if not path.is_file():
        raise WeightsRefused(f"{path}: no such file")
    category_ids = list(dataset.categories.order_by("coco_id").values_list("coco_id", flat=True))
    if not category_ids:
        raise WeightsRefused(f"dataset {dataset.name!r} has no categories to predict")
    try:
        # a bare state_dict takes the dataset's categories; a checkpoint brings its own
        model = get_engine(engine, category_ids=category_ids, **({"architecture": architecture} if architecture else {}))
        model.load(path)
    except (CheckpointError, EngineUnavailable, ValueError) as exc:
        raise WeightsRefused(f"{path}: {exc}") from exc
    if sorted(model.category_ids) != sorted(category_ids):
        raise WeightsRefused(f"{path}: predicts categories {model.category_ids}, the dataset has {category_ids}")
    name = next_version_name(dataset, model.config.to_json())
    workdir = Path(tempfile.mkdtemp(prefix="register-"))
    try:
        checkpoint = model.save(workdir / "weights.pt")
        # an ml_backend checkpoint is kept byte for byte (its digest is the file the admin
        # brought); a bare state_dict is stored as the checkpoint made from it
        stored = path if is_checkpoint(read_weights(path)) else checkpoint.path
        metrics = None
        if evaluate:
            val = build_coco(dataset, [Split.VAL], labeled_only=True)
            metrics = evaluate_on_validation(model, val, workdir / "pr.png") if val["images"] else None
        version = ModelVersion(
            dataset=dataset, name=name, engine=checkpoint.engine, config=checkpoint.config,
            category_ids=checkpoint.category_ids, weights_sha256=sha256_file(stored),
            metrics=json.loads(json.dumps(metrics)) if metrics else None, registered_by=actor,
        )
        version.weights.name = store_weights(stored, f"models/{dataset.pk}/{name}.pt")
        decision = evaluate_gate(version, production_version(dataset), policy_of(dataset))
        version.gate_passed, version.gate_reason = decision.passed, f"registered from {path.name}; {decision.reason}"
        version.save()
        return version
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

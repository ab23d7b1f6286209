"""Rows for learning-loop tests: a tiny phantom dataset and model versions.

The engine settings are the production code paths shrunk for a 2-core CPU.
"""

from __future__ import annotations

from pathlib import Path

from django.core.files.base import ContentFile

from annotator.datasets.services.coco_import import import_coco
from annotator.datasets.services.membership import freeze_validation_split
from annotator.learning.selectors import policy_of
from annotator.models import Dataset, ModelVersion, Split
from ml_backend.phantoms import generate_dataset
from tests.tiny_engine import TINY_TORCHVISION

TINY_ENGINE = TINY_TORCHVISION


def phantom_dataset(root: Path, name: str = "loop", *, train: int = 8, val: int = 6, pool: int = 10,
                    iterations: int = 6) -> Dataset:
    """Import labeled train and validation phantoms (128 px) and an unlabeled pool."""
    for split, count, seed, images_only in ((Split.TRAIN, train, 11, False), (Split.VAL, val, 12, False),
                                            (Split.POOL, pool, 13, True)):
        folder = root / f"{split}-{seed}"
        annotations = folder / "annotations.json"
        if not annotations.exists():
            generate_dataset(folder, count, size=128, seed=seed)
        import_coco(annotations, folder / "images", name, split=split, images_only=images_only)
    dataset = freeze_validation_split(Dataset.objects.get(name=name))
    policy = policy_of(dataset)
    policy.engine_config = TINY_ENGINE
    policy.iterations = iterations
    policy.gate_floor = 0.0  # a few-iteration model scores ~0: these tests are about the loop, not its quality
    policy.save()
    return dataset


def random_weights_version(dataset: Dataset, name: str = "random-0001", **fields) -> ModelVersion:
    """A version with real (randomly initialised) weights: proposals and rankings run for real."""
    import tempfile

    from ml_backend.registry import get_engine

    category_ids = list(dataset.categories.order_by("coco_id").values_list("coco_id", flat=True))
    engine = get_engine("torchvision", category_ids=category_ids, **TINY_ENGINE)
    checkpoint = engine.save(Path(tempfile.mkdtemp()) / "weights.pt")
    version = ModelVersion(dataset=dataset, name=name, engine="torchvision", config=checkpoint.config,
                           category_ids=category_ids, weights_sha256=checkpoint.sha256, **fields)
    version.weights.save(f"{name}.pt", ContentFile(checkpoint.path.read_bytes()), save=False)
    version.save()
    return version

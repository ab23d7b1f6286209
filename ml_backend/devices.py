"""Where a torch engine computes, and in what precision it trains there.

The ``device`` setting of an engine config (``ml_backend.contract.DEVICE_SETTING``) is
resolved here, and only here:

- ``auto``: the current CUDA device where CUDA is available, else the CPU;
- ``cpu``;
- ``cuda`` (the current CUDA device) or ``cuda:N``: refused with ``DeviceUnavailable``
  where CUDA is not available or there is no device N, never silently run on the CPU.

Training on a GPU runs under autocast: bfloat16 on GPUs with native bfloat16 (compute
capability 8.0 and above: A100, H100, L4, RTX 30xx on), float16 with a gradient scaler
on older ones. bfloat16 keeps float32's exponent range, so its gradients need no
scaling; float16's small ones underflow without it. Training on the CPU stays float32
(CPU inference has its own bfloat16 option, ``engines/precision.py``).
"""

from __future__ import annotations

import contextlib
import itertools
import platform
from dataclasses import dataclass
from functools import cache

import torch

from ml_backend.contract import DeviceUnavailable, check_device_setting

BFLOAT16_CAPABILITY = (8, 0)  # Ampere: the first CUDA GPUs with bfloat16 tensor cores


def resolve_device(setting: str) -> torch.device:
    """The ``torch.device`` for a ``device`` setting, with an explicit CUDA index."""
    check_device_setting(setting)
    if setting == "cpu" or (setting == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        build = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise DeviceUnavailable(
            f"device {setting!r} asked for, but CUDA is not available here (torch "
            f"{torch.__version__}, {build}); use device='auto' or 'cpu', or run on a GPU machine"
        )
    _, _, number = setting.partition(":")
    index = int(number) if number else torch.cuda.current_device()
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceUnavailable(f"device {setting!r} asked for, but this machine has {count} CUDA device(s)")
    return torch.device("cuda", index)


@cache
def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    """The GPU's name (``NVIDIA H100 80GB HBM3``) or the CPU's model."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return _cpu_name()


def autocast_dtype(device_type: str, capability: tuple[int, int] | None) -> torch.dtype | None:
    """The autocast dtype for training on ``device_type`` (``capability``: the CUDA
    compute capability, None elsewhere); None means float32, no autocast."""
    if device_type != "cuda":
        return None
    if capability is not None and capability >= BFLOAT16_CAPABILITY:
        return torch.bfloat16
    return torch.float16


@dataclass(frozen=True)
class MixedPrecision:
    """How a training step computes: ``autocast()`` around the forward pass and the
    loss, and ``grad_scaler()`` for the backward pass and the optimiser step (a scaler
    that does nothing unless the dtype is float16)."""

    device_type: str
    dtype: torch.dtype | None

    @property
    def name(self) -> str:
        return "float32" if self.dtype is None else str(self.dtype).removeprefix("torch.")

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        return torch.amp.GradScaler(self.device_type, enabled=self.dtype == torch.float16)


def training_precision(device: torch.device) -> MixedPrecision:
    """Mixed precision for training on ``device`` (see the module doc)."""
    capability = torch.cuda.get_device_capability(device) if device.type == "cuda" else None
    return MixedPrecision(device.type, autocast_dtype(device.type, capability))


def device_of(module: torch.nn.Module) -> torch.device:
    """The device of a module's first parameter (or buffer; the CPU for an empty one)."""
    first = next(itertools.chain(module.parameters(), module.buffers()), None)
    return torch.device("cpu") if first is None else first.device


def device_report(device: torch.device) -> dict[str, str]:
    """What a training run or a worker reports about where it computes:
    ``{"device": "cuda:0", "device_name": "NVIDIA H200"}``."""
    return {"device": str(device), "device_name": device_name(device)}

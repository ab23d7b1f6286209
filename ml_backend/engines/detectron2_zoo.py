"""detectron2 model-zoo weights (``.pkl``), read without running the pickle's code.

The trust boundary. detectron2's ``DetectionCheckpointer`` reads a ``.pkl`` file with
``pickle.load(f, encoding="latin1")``: unpickling runs whatever callables the file
names, so a weights file from outside would be a program run with the worker's rights.
The engine never hands a ``.pkl`` file to detectron2. ``read_zoo_pickle`` unpickles it
with an allow-list of exactly what numpy arrays need (``numpy.ndarray``,
``numpy.dtype`` and numpy's array reconstructors), ``collections.OrderedDict`` and
``_codecs.encode`` (how Python 3 writes bytes at protocol 2); a file naming any other
global is refused before anything in it is called. What it
holds must then be one of the two layouts that detectron2's checkpointer reads from a
``.pkl``:

- detectron2's model zoo: ``{"model": {name: array}, "__author__": ...}``, names
  already detectron2's (name matching only where the file says
  ``"matching_heuristics": True``, as detectron2's conversion scripts write);
- Caffe2 / Detectron1: ``{"blobs": {name: array}, ...}`` or a flat ``{name: array}``
  (ImageNet backbones such as ``R-50.pkl``), Caffe2 names, ``*_momentum`` blobs dropped;
  detectron2 maps the names by its matching heuristics.

Every weight must be a numeric array; it becomes a tensor. The result is the dict that
``DetectionCheckpointer._load_model`` takes, so the matching, renaming and shape checks
are detectron2's own. This module imports neither detectron2 nor anything unsafe.
"""

from __future__ import annotations

import importlib
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ml_backend.checkpoints import CheckpointError, UnsafeCheckpointError

ALLOWED_GLOBALS = frozenset({
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),  # arrays pickled by numpy 1 ...
    ("numpy._core.multiarray", "_reconstruct"),  # ... and numpy 2 (protocols 2-4)
    ("numpy.core.numeric", "_frombuffer"),  # protocol 5
    ("numpy._core.numeric", "_frombuffer"),
    ("collections", "OrderedDict"),
    ("_codecs", "encode"),  # bytes in a protocol-2 pickle written by Python 3: str -> bytes
})


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Resolves only ``ALLOWED_GLOBALS``; plain containers and numbers need none."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise UnsafeCheckpointError(f"refused: it names {module}.{name}, not only numpy arrays")
        return getattr(importlib.import_module(module), name)


def _tensors(weights: Any, path: Path) -> dict[str, torch.Tensor]:
    if not isinstance(weights, dict):
        raise CheckpointError(f"{path}: the weights are a {type(weights).__name__}, not a dict of arrays")
    tensors = {}
    for name, value in weights.items():
        if not isinstance(value, np.ndarray) or value.dtype.kind not in "biuf":
            kind = f"array of {value.dtype}" if isinstance(value, np.ndarray) else type(value).__name__
            raise CheckpointError(f"{path}: weight {name!r} is a {kind}, not a numeric array")
        tensors[str(name)] = torch.from_numpy(np.ascontiguousarray(value))
    return tensors


def read_zoo_pickle(path: Path) -> dict[str, Any]:
    """The checkpoint dict ``DetectionCheckpointer._load_model`` takes, from a model-zoo
    ``.pkl`` file: ``model`` (tensors), ``__author__``, ``matching_heuristics``. Raises
    ``UnsafeCheckpointError`` for a pickle that names anything but numpy arrays, and
    ``CheckpointError`` for a layout detectron2 does not read from a ``.pkl``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such weights file")
    try:
        with open(path, "rb") as handle:
            data = _ArraysOnlyUnpickler(handle, encoding="latin1").load()
    except UnsafeCheckpointError as exc:
        raise UnsafeCheckpointError(f"{path}: {exc}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise CheckpointError(f"{path}: not a readable model-zoo pickle: {exc}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: holds a {type(data).__name__}, not a model-zoo dict")
    if "model" in data and "__author__" in data:  # as converted by detectron2's tools
        return {"model": _tensors(data["model"], path), "__author__": str(data["__author__"]),
                "matching_heuristics": bool(data.get("matching_heuristics", False))}
    weights = data.get("blobs", data)
    if isinstance(weights, dict):
        weights = {k: v for k, v in weights.items() if not str(k).endswith("_momentum")}
    return {"model": _tensors(weights, path), "__author__": "Caffe2", "matching_heuristics": True}

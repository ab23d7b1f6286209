"""Engines by name.

Importing this module imports no torch: the built-in engines are imported the first
time one of them is asked for. An engine class registers itself with ``@register``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from ml_backend.contract import Engine

BUILTIN_MODULES = {
    "torchvision": "ml_backend.engines.torchvision_engine",
    "detectron2": "ml_backend.engines.detectron2_engine",
}
DEFAULT_ENGINE = "torchvision"

_ENGINES: dict[str, type[Engine]] = {}


class EngineUnavailable(Exception):
    """The engine is unknown, or its framework is not installed here."""


def register(cls: type[Engine]) -> type[Engine]:
    """Class decorator: make ``cls`` available as ``get_engine(cls.name)``."""
    if not cls.name:
        raise ValueError(f"{cls.__qualname__} has no name")
    _ENGINES[cls.name] = cls
    return cls


def engine_class(name: str) -> type[Engine]:
    if name not in _ENGINES and name in BUILTIN_MODULES:
        try:
            importlib.import_module(BUILTIN_MODULES[name])
        except ImportError as exc:
            raise EngineUnavailable(f"engine {name!r} cannot be imported here: {exc}") from exc
    if name not in _ENGINES:
        known = sorted(set(_ENGINES) | set(BUILTIN_MODULES))
        raise EngineUnavailable(f"unknown engine {name!r}; known: {', '.join(known)}")
    return _ENGINES[name]


def available_engines() -> list[str]:
    """Names of the engines whose framework imports here."""
    names = []
    for name in sorted(set(BUILTIN_MODULES) | set(_ENGINES)):
        try:
            engine_class(name)
        except EngineUnavailable:
            continue
        names.append(name)
    return names


def get_engine(name: str = DEFAULT_ENGINE, **config: Any) -> Engine:
    """A new engine; ``config`` is its JSON config (see each engine's config dataclass),
    plus ``category_ids=[...]`` to start from random weights instead of loading some."""
    return engine_class(name)(**config)


def load_engine(path: Path, **overrides: Any) -> Engine:
    """The engine a checkpoint file was written by, with its weights and config loaded
    (``overrides`` win over the stored config, e.g. ``num_threads``)."""
    from ml_backend.checkpoints import load_checkpoint

    payload = load_checkpoint(Path(path))
    engine = get_engine(payload["engine"], **overrides)
    engine.load(Path(path))
    return engine

"""The worker's loaded engine: one model in memory per worker process, reloaded only when
the version (or its weights) changes."""

from __future__ import annotations

from annotator.learning.media import local_copy
from annotator.learning.models import ModelVersion

_engines: dict[tuple[int, str], object] = {}


def engine_for(version: ModelVersion):
    """The version's engine, loaded once per worker process (keyed by weights digest)."""
    from ml_backend.registry import load_engine

    key = (version.pk, version.weights_sha256)
    if key not in _engines:
        _engines.clear()  # one model in memory at a time
        _engines[key] = load_engine(local_copy(version.weights.name))
    return _engines[key]

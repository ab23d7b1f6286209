"""Checkpoint files: written atomically with their sha256, read only as plain tensors.

A checkpoint is a dict of tensors and JSON-able metadata saved with ``torch.save``.
It is read back with ``torch.load(weights_only=True)``, which unpickles nothing but
tensors and builtin containers; a file that needs anything else is refused with
``UnsafeCheckpointError`` and is never unpickled by any other means.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

FORMAT = "ml_backend.checkpoint/1"
_CHUNK = 1 << 20


class CheckpointError(Exception):
    """A checkpoint file could not be used; the message names the file and why."""


class UnsafeCheckpointError(CheckpointError):
    """The file holds something other than tensors and plain data."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` so that ``path`` holds either the old or the whole new content:
    a temporary file in the same folder, fsync, ``os.replace``, then fsync the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save_checkpoint(path: Path, payload: dict[str, Any]) -> str:
    """Atomically write ``payload`` (tensors and plain data only) and return its sha256."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **payload}, buffer)
    data = buffer.getvalue()
    atomic_write_bytes(Path(path), data)
    return hashlib.sha256(data).hexdigest()


def read_weights(path: Path, expected_sha256: str | None = None) -> Any:
    """``torch.load(weights_only=True)`` of any weights file (ours, or a bare state_dict
    an admin registers). Raises ``CheckpointError`` when the file is missing or its digest
    differs from ``expected_sha256``, ``UnsafeCheckpointError`` when it needs more than
    tensors and plain data to load."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if expected_sha256 is not None and (actual := sha256_file(path)) != expected_sha256:
        raise CheckpointError(f"{path}: sha256 {actual} differs from expected {expected_sha256}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, EOFError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnsafeCheckpointError(
            f"{path}: refused, not loadable as plain tensors (weights_only=True): {reason}"
        ) from None


def is_checkpoint(payload: Any) -> bool:
    """Whether ``payload`` (from ``read_weights``) was written by ``save_checkpoint``."""
    return isinstance(payload, dict) and payload.get("format") == FORMAT


def load_checkpoint(path: Path, expected_sha256: str | None = None) -> dict[str, Any]:
    """``read_weights``, and refuse anything not written by ``save_checkpoint``."""
    payload = read_weights(path, expected_sha256)
    if not is_checkpoint(payload):
        raise CheckpointError(f"{path}: not an ml_backend checkpoint (expected format {FORMAT})")
    return payload

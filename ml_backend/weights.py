"""torchvision's published weights: read from the torch hub cache, fetched only on request.

Training and serving never download. They read the file torchvision would have written,
``$TORCH_HOME/hub/checkpoints/<name from the URL>`` (``torch.hub.get_dir()``), check it
against the SHA-256 prefix torchvision publishes in that name, and load it with
``weights_only=True``. Where the file is missing the error names it, the folder, and the
command that fetches it: ``fetch_weights`` (``python -m ml_backend fetch-weights NAME`` or
``manage.py fetch_weights NAME``), which downloads through the weights enum itself
(``get_state_dict(check_hash=True)``) on a machine with internet access.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import urllib.error
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch.hub import HASH_REGEX
from torchvision.models import MobileNet_V3_Large_Weights, ResNet50_Weights, WeightsEnum
from torchvision.models.detection import (
    FasterRCNN_MobileNet_V3_Large_FPN_Weights,
    FasterRCNN_ResNet50_FPN_V2_Weights,
)

from ml_backend.checkpoints import CheckpointError

PUBLISHED: dict[str, WeightsEnum] = {
    "fasterrcnn_resnet50_fpn_v2_coco": FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1,
    "fasterrcnn_mobilenet_v3_large_fpn_coco": FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1,
    "resnet50_imagenet": ResNet50_Weights.IMAGENET1K_V1,
    "mobilenet_v3_large_imagenet": MobileNet_V3_Large_Weights.IMAGENET1K_V1,
}
FETCH_COMMANDS = ("python -m ml_backend fetch-weights {name}", "manage.py fetch_weights {name}")


class WeightsUnavailable(CheckpointError):
    """Published weights are missing, damaged, or could not be downloaded; the message
    names the file, where it was looked for, and what to do."""


def weights_of(name: str) -> WeightsEnum:
    if name not in PUBLISHED:
        raise WeightsUnavailable(f"unknown weights {name!r}; known: {', '.join(sorted(PUBLISHED))}")
    return PUBLISHED[name]


def cached_path(name: str) -> Path:
    """Where torchvision keeps (or would keep) the file: the hub cache under TORCH_HOME."""
    filename = os.path.basename(urlparse(weights_of(name).url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def verify_hash(name: str, path: Path) -> None:
    """The file's SHA-256 must start with the prefix torchvision publishes in its name."""
    match = HASH_REGEX.search(path.name)
    if match is None or not match.group(1):
        return
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    if not digest.hexdigest().startswith(match.group(1)):
        raise WeightsUnavailable(
            f"{path}: SHA-256 {digest.hexdigest()[:16]}... does not start with the published "
            f"prefix {match.group(1)} of {name}; delete the file and run "
            + " or ".join(c.format(name=name) for c in FETCH_COMMANDS)
        )


def published_state_dict(name: str) -> dict[str, torch.Tensor]:
    """The state_dict of published weights ``name``, from the hub cache only."""
    path = cached_path(name)
    if not path.is_file():
        fetch = " or ".join(f"`{c.format(name=name)}`" for c in FETCH_COMMANDS)
        raise WeightsUnavailable(
            f"{name}: {path.name} not found in the torch hub cache {path.parent} "
            f"(TORCH_HOME={os.environ.get('TORCH_HOME', 'unset')}); nothing is downloaded at run time. "
            f"Fetch it on a machine with internet access with {fetch} (same TORCH_HOME), "
            f"or copy the file there from {weights_of(name).url}"
        )
    verify_hash(name, path)
    return torch.load(path, map_location="cpu", weights_only=True)


def fetch_weights(name: str, progress: bool = True) -> Path:
    """Download ``name`` into the hub cache through torchvision's weights enum, check the
    published hash (also of a file already there), and return its path."""
    weights, path = weights_of(name), cached_path(name)
    if path.is_file():
        verify_hash(name, path)
        return path
    try:
        with contextlib.redirect_stdout(sys.stderr):  # torch.hub's "Downloading: ..." line
            weights.get_state_dict(progress=progress, check_hash=True, weights_only=True)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise WeightsUnavailable(
            f"{name}: cannot download {weights.url} into {path.parent}: {reason}. "
            "This machine may have no internet access: fetch it where there is, then copy "
            f"{path.name} into {path.parent}"
        ) from None
    except RuntimeError as exc:  # torch.hub's "invalid hash value"
        raise WeightsUnavailable(f"{name}: download from {weights.url} refused: {exc}") from None
    verify_hash(name, path)
    return path

"""Training augmentations for radiographs with their fracture boxes.

Built on ``torchvision.transforms.v2``, which moves ``BoundingBoxes`` with the image
(flips mirror them, a rotation takes the box around the rotated corners) and drops boxes
that leave the image. Randomness comes from torch's generator, so a seeded run repeats.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2


@dataclass(frozen=True)
class AugmentSettings:
    hflip: bool = True
    vflip: bool = False
    rotate_deg: float = 5.0  # uniform in [-rotate_deg, rotate_deg]; 0 = off
    brightness: float = 0.2  # ColorJitter factor range; 0 = off
    contrast: float = 0.2


class Augmenter:
    """Applies random flips, a small rotation and brightness/contrast jitter to one
    (C, H, W) image in [0, 1] and its ``xyxy`` pixel boxes."""

    def __init__(self, settings: AugmentSettings) -> None:
        steps: list[v2.Transform] = []
        if settings.hflip:
            steps.append(v2.RandomHorizontalFlip(0.5))
        if settings.vflip:
            steps.append(v2.RandomVerticalFlip(0.5))
        if settings.rotate_deg > 0:
            steps.append(v2.RandomRotation(settings.rotate_deg))
        if settings.brightness > 0 or settings.contrast > 0:
            steps.append(v2.ColorJitter(brightness=settings.brightness, contrast=settings.contrast))
        steps.append(v2.ClampBoundingBoxes())
        steps.append(v2.SanitizeBoundingBoxes(min_size=1.0))
        self._transform = v2.Compose(steps)

    def __call__(
        self, image: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        height, width = image.shape[-2:]
        sample = {
            "image": tv_tensors.Image(image),
            "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(height, width)),
            "labels": labels,
        }
        out = self._transform(sample)
        return (
            out["image"].as_subclass(torch.Tensor).clamp_(0.0, 1.0),
            out["boxes"].as_subclass(torch.Tensor),
            out["labels"],
        )

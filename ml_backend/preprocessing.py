"""Grayscale radiograph -> model input: what the model sees, written once.

1. ``model_view``: stored pixels in the model's polarity. DICOM MONOCHROME1 (bone dark)
   is inverted within its bit depth, so bone is bright as in MONOCHROME2 and in every
   8-bit JPEG/PNG. The platform calls it before ``Engine.predict`` (serving, gate,
   proposals, analysis); training and its validation call it through
   ``coco_dataset.load_pixels``, which reads the photometric interpretation and bit
   depth from the snapshot's COCO image entry.
2. The engine's intensity setting (``TorchEngine._to_tensor``): radiographs of 8 or 16
   bits whose useful intensities often fill a narrow part of the range are windowed (by
   percentiles, by default for images deeper than 8 bits) and optionally
   histogram-equalised to [0, 1], and repeated to three channels (``to_tensor``).
3. The detector's own transform (torchvision's ``GeneralizedRCNNTransform``) resizes and
   normalises the three channels with the backbone's ImageNet mean and std.

Everything but ``to_tensor`` is numpy only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

MONOCHROME1 = "MONOCHROME1"
MONOCHROME2 = "MONOCHROME2"


def model_view(pixels: np.ndarray, photometric: str = MONOCHROME2, bit_depth: int | None = None) -> np.ndarray:
    """Stored pixels as the model sees them: MONOCHROME1 inverted within ``bit_depth``
    (``2**bit_depth - 1 - p``; default: the dtype's bits), anything else unchanged."""
    if photometric != MONOCHROME1:
        return pixels
    if not np.issubdtype(pixels.dtype, np.unsignedinteger):
        raise ValueError(f"MONOCHROME1 pixels must be unsigned integers, got {pixels.dtype}")
    bits = pixels.dtype.itemsize * 8
    if bit_depth is None:
        bit_depth = bits
    if not 1 <= bit_depth <= bits:
        raise ValueError(f"bit_depth {bit_depth} does not fit {pixels.dtype} pixels")
    return (pixels.dtype.type((1 << bit_depth) - 1) - np.minimum(pixels, (1 << bit_depth) - 1)).astype(pixels.dtype)


NORMALISATIONS = ("auto", "percentile", "range")
"""``percentile``: clip to the [low, high] percentiles and rescale; ``range``: divide by
the dtype's maximum (or the float image's own range); ``auto``: ``range`` for 8-bit
images, ``percentile`` for deeper ones."""

EQUALISATION_BINS = 4096


def window_percentile(image: np.ndarray, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """Clip to the ``low``..``high`` percentiles and map that window to [0, 1]."""
    lo, hi = np.percentile(image, [low, high])
    if hi <= lo:
        return np.zeros(image.shape, dtype=np.float32)
    scaled = (image.astype(np.float32) - np.float32(lo)) / np.float32(hi - lo)
    return np.clip(scaled, 0.0, 1.0)


def scale_range(image: np.ndarray) -> np.ndarray:
    """Map the dtype's full range (or a float image's min..max) to [0, 1]."""
    if np.issubdtype(image.dtype, np.integer):
        return image.astype(np.float32) / np.float32(np.iinfo(image.dtype).max)
    lo, hi = float(image.min()), float(image.max())
    if hi <= lo:
        return np.zeros(image.shape, dtype=np.float32)
    return ((image - lo) / (hi - lo)).astype(np.float32)


def equalize_histogram(image01: np.ndarray, bins: int = EQUALISATION_BINS) -> np.ndarray:
    """Histogram-equalise an image in [0, 1] (fine bins, so 16-bit detail survives)."""
    hist, edges = np.histogram(image01, bins=bins, range=(0.0, 1.0))
    cdf = np.cumsum(hist).astype(np.float64)
    if cdf[-1] == 0:
        return image01.astype(np.float32)
    cdf = (cdf - cdf[0]) / max(cdf[-1] - cdf[0], 1.0)
    return np.interp(image01, edges[1:], cdf).astype(np.float32)


def normalise(
    image: np.ndarray,
    mode: str = "auto",
    low: float = 0.5,
    high: float = 99.5,
    equalize: bool = False,
) -> np.ndarray:
    """A 2-D grayscale image of any depth -> float32 (H, W) in [0, 1]."""
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D grayscale image, got shape {image.shape}")
    if mode not in NORMALISATIONS:
        raise ValueError(f"normalisation must be one of {NORMALISATIONS}, got {mode!r}")
    if mode == "auto":
        mode = "range" if image.dtype == np.uint8 else "percentile"
    out = window_percentile(image, low, high) if mode == "percentile" else scale_range(image)
    return equalize_histogram(out) if equalize else out


def to_tensor(image01: np.ndarray) -> torch.Tensor:
    """(H, W) float in [0, 1] -> (3, H, W) float32 tensor, the channel repeated."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(image01, dtype=np.float32)).expand(3, -1, -1)

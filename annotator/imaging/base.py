"""The value every decoder returns, the rejection error, and the checks they share."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from annotator.errors import InvalidInput

# Percentiles for the default window: robust to a few hot or dead pixels.
_WINDOW_PERCENTILES = (0.5, 99.5)
# The default window is computed on at most about this many pixels (a regular subsample).
_WINDOW_SAMPLE = 1_000_000


class ImageRejected(InvalidInput):
    """A file that cannot be accepted; str(e) names the file and the reason, for the user."""


@dataclass(frozen=True)
class DecodedImage:
    """Validated grayscale pixels of one uploaded file, with what is needed to show and store them.

    ``pixels`` is 2-D, native-endian, C-contiguous and read-only, uint8 or uint16, holding
    the values as stored: MONOCHROME1 is *not* inverted (the viewer inverts for display).
    ``window_center`` / ``window_width`` are in the same units as ``pixels``.
    ``bit_depth`` is the number of significant bits: BitsStored for DICOM, 8 for 8-bit
    PNG/JPEG, and 16 for every 16-bit PNG (a PNG's sBIT chunk is not consulted, and PNG
    scales low-precision samples to the full 16 bits anyway).

    What decoding did beyond reading the file, for an import or upload to report and store:

    - ``exif_orientation``: the EXIF Orientation (2..8) that was applied to a PNG or JPEG,
      so ``pixels`` are upright as every viewer shows them; None when none was applied.
    - ``damaged``: None for an intact file; otherwise why the pixels are incomplete (only
      with ``decode_image(..., allow_damaged=True)``, for a JPEG that ends early).
    - ``warnings``: problems that did not stop decoding, each naming the file, e.g. a
      DICOM PixelSpacing of 0 stored as unknown.
    """

    pixels: np.ndarray
    bit_depth: int
    photometric: str
    window_center: float
    window_width: float
    pixel_spacing: tuple[float, float] | None
    source_format: str
    deidentified_dicom: bytes | None
    sha256: str
    exif_orientation: int | None = None
    damaged: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


def native_grayscale(pixels: np.ndarray) -> np.ndarray:
    """The 2-D uint8/uint16 pixels in native byte order and C order; ValueError for anything else."""
    if pixels.ndim != 2 or pixels.dtype.kind != "u" or pixels.dtype.itemsize not in (1, 2):
        raise ValueError(f"expected 2-D uint8 or uint16 pixels, got {pixels.dtype} {pixels.shape}")
    return np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder("="))


def pixel_sha256(pixels: np.ndarray) -> str:
    """Hex digest of dtype, shape and pixel bytes: the same picture gives the same hash."""
    pixels = np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder("<"))
    digest = hashlib.sha256(f"{pixels.dtype.str}{pixels.shape}".encode())
    digest.update(pixels.tobytes())
    return digest.hexdigest()


def default_window(pixels: np.ndarray) -> tuple[float, float]:
    """Window (center, width) spanning the 0.5th to 99.5th percentile of the pixel values."""
    step = max(1, int(np.ceil(np.sqrt(pixels.size / _WINDOW_SAMPLE))))
    low, high = np.percentile(pixels[::step, ::step], _WINDOW_PERCENTILES)
    return float(low + high) / 2, max(float(high - low), 1.0)


def check_pixel_count(filename: str, width: int, height: int, max_pixels: int) -> None:
    """Reject an image whose declared size is over the limit, before anything is decoded."""
    count = width * height
    if count > max_pixels:
        raise ImageRejected(
            f"{filename} has {width}×{height} = {count} pixels, over the limit of {max_pixels}"
        )
    if count == 0:
        raise ImageRejected(f"{filename} has no pixels ({width}×{height})")


def build_decoded(
    pixels: np.ndarray,
    *,
    bit_depth: int,
    photometric: str,
    source_format: str,
    window: tuple[float, float] | None = None,
    pixel_spacing: tuple[float, float] | None = None,
    deidentified_dicom: bytes | None = None,
    exif_orientation: int | None = None,
    damaged: str | None = None,
    warnings: tuple[str, ...] = (),
) -> DecodedImage:
    """Freeze the pixels (native byte order, read-only) and fill in the window and hash."""
    pixels = native_grayscale(pixels)
    pixels.setflags(write=False)
    center, width = window if window is not None else default_window(pixels)
    return DecodedImage(
        pixels=pixels,
        bit_depth=bit_depth,
        photometric=photometric,
        window_center=center,
        window_width=width,
        pixel_spacing=pixel_spacing,
        source_format=source_format,
        deidentified_dicom=deidentified_dicom,
        sha256=pixel_sha256(pixels),
        exif_orientation=exif_orientation,
        damaged=damaged,
        warnings=warnings,
    )

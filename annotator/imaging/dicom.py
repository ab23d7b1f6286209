"""DICOM: validation, pixel decoding with pydicom, and the de-identified file to store.

Policy, for single-frame grayscale radiographs:
- Only files with the 128-byte preamble and 'DICM' prefix are read (``force=False``).
- Multi-frame files, colour (SamplesPerPixel != 1) and BitsAllocated other than 8 or 16
  are rejected rather than guessed at.
- Pixels are the stored values, so the full bit depth is kept (``bit_depth`` is
  BitsStored). Signed data (PixelRepresentation 1) is shifted by 2**(BitsStored-1) into
  the unsigned range. RescaleSlope/Intercept are *not* applied to the pixels (that could
  lose precision); instead the DICOM window, which is in rescaled units, is mapped back to
  stored units, so window and pixels always agree.
- MONOCHROME1 is recorded, not inverted.
- A PixelSpacing or ImagerPixelSpacing that is not two positive finite numbers means
  unknown: the spacing is None and the result carries a warning. Only a file whose pixels
  cannot be read (or described) is rejected.
"""

from __future__ import annotations

import math
from io import BytesIO

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue

from .base import DecodedImage, ImageRejected, build_decoded, check_pixel_count
from .deidentify import deidentify_dataset

_MAGIC_OFFSET = 128
_MAGIC = b"DICM"
_GRAYSCALE = ("MONOCHROME1", "MONOCHROME2")
_SPACING_KEYWORDS = ("PixelSpacing", "ImagerPixelSpacing")


def is_dicom(data: bytes) -> bool:
    """True when the file has the DICOM Part 10 'DICM' prefix after its preamble."""
    return data[_MAGIC_OFFSET : _MAGIC_OFFSET + len(_MAGIC)] == _MAGIC


def decode_dicom(data: bytes, filename: str, *, max_pixels: int) -> DecodedImage:
    """Validate and decode a DICOM file; the returned image carries the de-identified file."""
    ds = _read(data, filename)
    _check_image_attributes(ds, filename, max_pixels)
    _check_native_length(ds, filename)
    spacing, spacing_warnings = _pixel_spacing(ds, filename)
    stored = _decode_pixels(ds, filename)
    offset = (1 << (ds.BitsStored - 1)) if ds.PixelRepresentation == 1 else 0
    dtype = np.uint8 if ds.BitsAllocated == 8 else np.uint16
    return build_decoded(
        (stored.astype(np.int32) + offset).astype(dtype),
        bit_depth=int(ds.BitsStored),
        photometric=str(ds.PhotometricInterpretation),
        source_format="dicom",
        window=_header_window(ds, offset),
        pixel_spacing=spacing,
        deidentified_dicom=_deidentified_file(ds),
        warnings=spacing_warnings,
    )


def _deidentified_file(ds: Dataset) -> bytes:
    """De-identify ``ds`` in place and write it as a DICOM Part 10 file."""
    deidentify_dataset(ds)
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _read(data: bytes, filename: str) -> Dataset:
    """Read the file and parse every element now, so malformed values are rejected here."""
    try:
        ds = dcmread(BytesIO(data), force=False)
        for _ in ds.iterall():
            pass
    except InvalidDicomError as exc:
        raise ImageRejected(f"{filename} is not a DICOM file: {exc}") from exc
    # pydicom's parse errors (struct, length, value and its own exceptions) share no base.
    except Exception as exc:
        raise ImageRejected(f"{filename} is a damaged DICOM file: {exc}") from exc
    return ds


def _require(ds: Dataset, keyword: str, filename: str) -> object:
    value = ds.get(keyword)
    if value is None or value == "":
        raise ImageRejected(f"{filename} is missing the DICOM attribute {keyword}")
    return value


def _check_image_attributes(ds: Dataset, filename: str, max_pixels: int) -> None:
    if "PixelData" not in ds:
        raise ImageRejected(f"{filename} has no pixel data")
    _require(ds.file_meta, "TransferSyntaxUID", filename)
    for keyword in ("Rows", "Columns", "BitsAllocated", "BitsStored", "PixelRepresentation"):
        _require(ds, keyword, filename)
    photometric = _require(ds, "PhotometricInterpretation", filename)
    if ds.get("SamplesPerPixel", 1) != 1 or photometric not in _GRAYSCALE:
        raise ImageRejected(
            f"{filename} is {photometric}; only grayscale (MONOCHROME1/MONOCHROME2) is accepted"
        )
    frames = int(ds.get("NumberOfFrames") or 1)
    if frames != 1:
        raise ImageRejected(
            f"{filename} has {frames} frames; only single-frame images are accepted"
        )
    check_pixel_count(filename, ds.Columns, ds.Rows, max_pixels)
    if ds.BitsAllocated not in (8, 16):
        raise ImageRejected(f"{filename} has BitsAllocated {ds.BitsAllocated}; expected 8 or 16")
    if not 1 <= ds.BitsStored <= ds.BitsAllocated:
        raise ImageRejected(
            f"{filename} has BitsStored {ds.BitsStored} for BitsAllocated {ds.BitsAllocated}"
        )


def _check_native_length(ds: Dataset, filename: str) -> None:
    """For uncompressed transfer syntaxes the pixel data length must match the image size."""
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        return
    expected = ds.Rows * ds.Columns * ds.BitsAllocated // 8
    actual = len(ds.PixelData)
    if actual not in (expected, expected + expected % 2):  # odd lengths are padded to even
        raise ImageRejected(
            f"{filename} pixel data is {actual} bytes, expected {expected} for "
            f"{ds.Rows}×{ds.Columns} at {ds.BitsAllocated} bits"
        )


def _decode_pixels(ds: Dataset, filename: str) -> np.ndarray:
    try:
        stored = ds.pixel_array
    # Decoders are plugins (pylibjpeg, openjpeg, RLE, ...) that share no error type.
    except Exception as exc:
        raise ImageRejected(f"{filename} pixel data cannot be decoded: {exc}") from exc
    if stored.shape != (ds.Rows, ds.Columns):
        raise ImageRejected(
            f"{filename} pixel data decodes to {stored.shape}, expected {ds.Rows}×{ds.Columns}"
        )
    return stored


def _floats(ds: Dataset, keyword: str) -> list[float] | None:
    """The values of a numeric (DS/IS) attribute; None when absent or empty.

    Raises ValueError when a value is not a number.
    """
    value = ds.get(keyword)  # pydicom raises ValueError here for some malformed strings
    items = list(value) if isinstance(value, MultiValue) else [value]
    if not items or items == [None] or items == [""]:
        return None
    try:
        return [float(item) for item in items]
    except TypeError as exc:
        raise ValueError(str(exc)) from exc


def _header_window(ds: Dataset, offset: int) -> tuple[float, float] | None:
    """The first WindowCenter/WindowWidth, mapped to stored units; None when unusable."""
    try:
        center, width = _floats(ds, "WindowCenter"), _floats(ds, "WindowWidth")
        slope = (_floats(ds, "RescaleSlope") or [1.0])[0]
        intercept = (_floats(ds, "RescaleIntercept") or [0.0])[0]
    except ValueError:
        return None
    if center is None or width is None:
        return None
    center, width = center[0], width[0]
    if not all(map(math.isfinite, (center, width, slope, intercept))):
        return None
    if width <= 0 or slope <= 0:
        return None
    return (center - intercept) / slope + offset, width / slope


def _pixel_spacing(
    ds: Dataset, filename: str
) -> tuple[tuple[float, float] | None, tuple[str, ...]]:
    """(row, column) spacing in mm from PixelSpacing, else ImagerPixelSpacing, and a warning
    for each of them that is present but unusable.

    Unusable means unknown (devices write 0\\0 for it), so it never rejects the file.
    """
    warnings = []
    for keyword in _SPACING_KEYWORDS:
        try:
            values = _floats(ds, keyword)
        except ValueError as exc:
            problem = f"is not a number ({exc})"
        else:
            if values is None:
                continue
            problem = _spacing_problem(values)
            if problem is None:
                return (values[0], values[1]), tuple(warnings)
        warnings.append(f"{filename} {keyword} {problem}: ignored, taken as unknown")
    return None, tuple(warnings)


def _spacing_problem(values: list[float]) -> str | None:
    """Why a spacing cannot be used, or None when it is two positive finite numbers."""
    if len(values) != 2:
        return f"has {len(values)} values, expected 2"
    shown = ", ".join(map(str, values))
    if not all(map(math.isfinite, values)):
        return f"is not finite ({shown})"
    if min(values) <= 0:
        return f"is not positive ({shown})"
    return None

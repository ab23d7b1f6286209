"""PNG and JPEG: header size check, decoding with Pillow (EXIF orientation applied), and the
canonical PNG encoder."""

from __future__ import annotations

import struct
import warnings
import zlib
from io import BytesIO

import numpy as np
from PIL import ExifTags, Image, ImageOps

from .base import (
    DecodedImage,
    ImageRejected,
    build_decoded,
    check_pixel_count,
    native_grayscale,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"
JPEG_END_MARKER = b"\xff\xd9"  # EOI

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I"})
# Colour and bilevel exports are reduced to 8-bit luma (X-ray exports are often RGB with
# equal channels, where this is exact).
_GRAYSCALE_CONVERTIBLE_MODES = frozenset({"RGB", "RGBA", "P", "PA", "LA", "1"})
# JPEG start-of-frame markers (SOF0..SOF15 without DHT, JPG and DAC), which carry the size.
_JPEG_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# EXIF orientations that ImageOps.exif_transpose turns or flips (1 is already upright).
_TRANSPOSING_ORIENTATIONS = range(2, 9)


def sniff_raster(data: bytes) -> str | None:
    """'png' or 'jpeg' from the file's signature, else None."""
    if data.startswith(PNG_SIGNATURE):
        return "png"
    if data.startswith(JPEG_SIGNATURE):
        return "jpeg"
    return None


def header_size(data: bytes, source_format: str) -> tuple[int, int] | None:
    """(width, height) as declared in the PNG IHDR or the first JPEG SOF, without decoding.

    Returns None when the header cannot be found; Pillow then reports the file as broken.
    """
    if source_format == "png":
        if len(data) < 24 or data[12:16] != b"IHDR":
            return None
        return struct.unpack(">II", data[16:24])
    offset = 2
    while offset + 4 <= len(data) and data[offset] == 0xFF:
        marker = data[offset + 1]
        (length,) = struct.unpack(">H", data[offset + 2 : offset + 4])
        if marker in _JPEG_SOF_MARKERS and offset + 9 <= len(data):
            height, width = struct.unpack(">HH", data[offset + 5 : offset + 9])
            return width, height
        offset += 2 + length
    return None


def decode_raster(
    data: bytes,
    filename: str,
    source_format: str,
    *,
    max_pixels: int,
    allow_damaged: bool = False,
) -> DecodedImage:
    """Decode a PNG or JPEG into upright uint8 (8-bit) or uint16 (16-bit PNG) grayscale pixels.

    With ``allow_damaged`` a JPEG that Pillow cannot read to its end (FracAtlas has files
    missing their last bytes) is decoded as far as its data goes and marked ``damaged``.
    """
    size = header_size(data, source_format)
    if size is not None:
        check_pixel_count(filename, *size, max_pixels)
    label = source_format.upper()
    if source_format == "png":
        _check_png_chunks(data, filename)
    damaged = None
    try:
        try:
            pixels, bit_depth, orientation = _load(data, filename, label, max_pixels)
        except OSError as exc:
            if not (allow_damaged and source_format == "jpeg"):
                raise
            # End the data with an EOI marker: libjpeg then finishes the image as at a
            # premature end of file (missing blocks come out mid-gray), which is what
            # viewers and Pillow's LOAD_TRUNCATED_IMAGES do. That flag is process-wide, so
            # setting it would let other threads' decodes accept truncated files unnoticed.
            pixels, bit_depth, orientation = _load(
                data + JPEG_END_MARKER, filename, label, max_pixels
            )
            damaged = f"{filename} is a damaged JPEG ({exc}); decoded as far as its data goes"
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(f"{filename} is too large to decode safely: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise ImageRejected(f"{filename} is not a readable {label} image: {exc}") from exc
    return build_decoded(
        pixels,
        bit_depth=bit_depth,
        photometric="MONOCHROME2",
        source_format=source_format,
        exif_orientation=orientation,
        damaged=damaged,
    )


def _load(
    data: bytes, filename: str, label: str, max_pixels: int
) -> tuple[np.ndarray, int, int | None]:
    """Pixels, bit depth and the EXIF orientation applied; Pillow's errors pass through."""
    # Pillow's own decompression-bomb guard stays as a second line of defence.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(BytesIO(data), formats=[label]) as img:
            # Again from Pillow's reading of the header, for JPEGs header_size misses.
            check_pixel_count(filename, img.width, img.height, max_pixels)
            img.load()
            orientation = img.getexif().get(ExifTags.Base.Orientation)
            ImageOps.exif_transpose(img, in_place=True)
            pixels, bit_depth = _grayscale(img, filename)
    return pixels, bit_depth, orientation if orientation in _TRANSPOSING_ORIENTATIONS else None


def _check_png_chunks(data: bytes, filename: str) -> None:
    """Verify every chunk's CRC up to IEND: Pillow does not check image-data chunks, so a
    damaged PNG could otherwise decode to wrong pixels without any error."""
    offset = len(PNG_SIGNATURE)
    while offset + 12 <= len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        end = offset + 8 + length
        if end + 4 > len(data):
            break
        kind_and_payload = data[offset + 4 : end]
        (crc,) = struct.unpack(">I", data[end : end + 4])
        if zlib.crc32(kind_and_payload) != crc:
            kind = kind_and_payload[:4].decode("latin-1")
            raise ImageRejected(f"{filename} is a damaged PNG: bad checksum in a {kind} chunk")
        if kind_and_payload[:4] == b"IEND":
            return
        offset = end + 4
    raise ImageRejected(f"{filename} is a damaged PNG: it ends before its IEND chunk")


def _grayscale(img: Image.Image, filename: str) -> tuple[np.ndarray, int]:
    if img.mode == "L":
        return np.asarray(img, dtype=np.uint8), 8
    if img.mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(img)
        if values.min() < 0 or values.max() > 0xFFFF:
            raise ImageRejected(f"{filename} has pixel values outside the 16-bit range")
        return values.astype(np.uint16), 16
    if img.mode in _GRAYSCALE_CONVERTIBLE_MODES:
        return np.asarray(img.convert("L"), dtype=np.uint8), 8
    raise ImageRejected(
        f"{filename} has unsupported image mode {img.mode}; expected grayscale, RGB or palette"
    )


def encode_png(pixels: np.ndarray) -> bytes:
    """Lossless 8- or 16-bit grayscale PNG of 2-D uint8/uint16 pixels; decoding gives them back exactly."""
    buffer = BytesIO()
    Image.fromarray(native_grayscale(pixels)).save(buffer, format="PNG")
    return buffer.getvalue()

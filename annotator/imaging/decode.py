"""Entry point: detect the format of an uploaded file by content and decode it."""

from __future__ import annotations

from .base import DecodedImage, ImageRejected
from .dicom import decode_dicom, is_dicom
from .raster import decode_raster, sniff_raster

_DICOM_EXTENSIONS = (".dcm", ".dicom")


def decode_image(
    data: bytes, filename: str, *, max_pixels: int, allow_damaged: bool = False
) -> DecodedImage:
    """Validate and decode a PNG, JPEG or DICOM file; raises ImageRejected with the reason.

    The format comes from the content (signature, or the 'DICM' prefix after the DICOM
    preamble), not the name; but a file named like DICOM is always read as DICOM, so a
    ``.dcm`` that is not one is rejected as such. ``max_pixels`` bounds width × height and
    is checked from the header before any pixel is decoded.

    PNG and JPEG pixels come out upright: an EXIF orientation is applied and reported in
    ``exif_orientation``. A JPEG that ends early is rejected unless ``allow_damaged`` is
    true; then what is there is decoded and the result's ``damaged`` says why it is
    incomplete. Other damage (bad PNG checksums, undecodable DICOM pixel data) always
    rejects. Problems that do not stop decoding are listed in ``warnings``.
    """
    if not data:
        raise ImageRejected(f"{filename} is empty")
    if is_dicom(data) or filename.lower().endswith(_DICOM_EXTENSIONS):
        return decode_dicom(data, filename, max_pixels=max_pixels)
    source_format = sniff_raster(data)
    if source_format is None:
        raise ImageRejected(f"{filename} is not a PNG, JPEG or DICOM file")
    return decode_raster(
        data, filename, source_format, max_pixels=max_pixels, allow_damaged=allow_damaged
    )

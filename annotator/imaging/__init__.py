"""Turn an uploaded file (PNG, JPEG, 16-bit PNG, DICOM) into validated pixels and metadata.

Plain Python (numpy, Pillow, pydicom): no Django, no torch. Limits are arguments.
"""

from .base import DecodedImage, ImageRejected, default_window, pixel_sha256
from .decode import decode_image
from .deidentify import deidentify_dataset
from .raster import encode_png

__all__ = [
    "DecodedImage",
    "ImageRejected",
    "decode_image",
    "default_window",
    "deidentify_dataset",
    "encode_png",
    "pixel_sha256",
]

"""Builders for sample image files, made in memory (PNG, JPEG, DICOM and broken variants).

Every builder is deterministic. The DICOM samples carry identifying values (``PHI``) so
tests can check that none of them survives de-identification.
"""

from __future__ import annotations

import struct
import zlib
from io import BytesIO

import numpy as np
from PIL import ExifTags, Image
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian

DX_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"
ORIGINAL_UIDS = {
    "StudyInstanceUID": "1.2.826.0.1.3680043.2.1125.20240315.1",
    "SeriesInstanceUID": "1.2.826.0.1.3680043.2.1125.20240315.1.2",
    "SOPInstanceUID": "1.2.826.0.1.3680043.2.1125.20240315.1.2.3",
    "FrameOfReferenceUID": "1.2.826.0.1.3680043.2.1125.20240315.9",
}
PRIOR_SOP_INSTANCE_UID = "1.2.826.0.1.3680043.2.1125.20230101.7"
# Identifying values put into the sample DICOM; none may appear after de-identification.
PHI = {
    "PatientName": "Doe^Jane^Quincy",
    "PatientID": "PID-3141592",
    "PatientBirthDate": "19800214",
    "OtherPatientIDs": "OTHER-271828",
    "AccessionNumber": "ACC-5550123",
    "StudyID": "STUDY-8675309",
    "StudyDate": "20240315",
    "StudyTime": "101112",
    "SeriesDate": "20240316",
    "SeriesTime": "131415",
    "AcquisitionDate": "20240317",
    "AcquisitionTime": "161718",
    "InstitutionName": "Saint Nowhere Hospital",
    "InstitutionAddress": "12 Hidden Lane, Nowhereville",
    "ReferringPhysicianName": "House^Gregory",
    "OperatorsName": "Tech^Tina",
    "StationName": "XRAY-ROOM-7",
    "DeviceSerialNumber": "SN-99887766",
    "private": "ACME patient tracking 4242",
    "nested_person": "Nested^Person",
    "nested_datetime": "20240318192021",
}


def gradient(size: tuple[int, int] = (64, 48), bit_depth: int = 8) -> np.ndarray:
    """A (height, width) ramp covering 0 .. 2**bit_depth - 1, uint8 or uint16."""
    width, height = size
    top = (1 << bit_depth) - 1
    ramp = np.linspace(0, top, width * height).round().reshape(height, width)
    return ramp.astype(np.uint8 if bit_depth <= 8 else np.uint16)


def image_bytes(image: Image.Image, fmt: str, **save_options) -> bytes:
    buffer = BytesIO()
    image.save(buffer, format=fmt, **save_options)
    return buffer.getvalue()


def exif_orientation(orientation: int) -> Image.Exif:
    """EXIF data holding only the Orientation tag (1 upright, 3 turned 180°, 6 and 8 by 90°)."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    return exif


def png_bytes(
    bit_depth: int = 8, size: tuple[int, int] = (64, 48), orientation: int | None = None
) -> bytes:
    """A grayscale 8- or 16-bit PNG of ``gradient(size, bit_depth)``, with an EXIF
    orientation (an eXIf chunk) when ``orientation`` is given."""
    options = {} if orientation is None else {"exif": exif_orientation(orientation)}
    image = Image.fromarray(gradient(size, 16 if bit_depth > 8 else 8))
    return image_bytes(image, "PNG", **options)


def rgb_png_bytes(size: tuple[int, int] = (64, 48), mode: str = "RGB") -> bytes:
    """A PNG in ``mode`` (RGB, RGBA, LA, P) whose gray level is ``gradient(size)``."""
    return image_bytes(Image.fromarray(gradient(size)).convert(mode), "PNG")


def jpeg_bytes(
    size: tuple[int, int] = (64, 48), mode: str = "L", orientation: int | None = None
) -> bytes:
    """A JPEG of ``gradient(size)`` in ``mode`` (L, RGB or CMYK), quality 95, with an EXIF
    orientation when ``orientation`` is given (the pixels are stored as they are)."""
    options = {} if orientation is None else {"exif": exif_orientation(orientation)}
    image = Image.fromarray(gradient(size)).convert(mode)
    return image_bytes(image, "JPEG", quality=95, **options)


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    """The first ``keep`` fraction of a file."""
    return data[: int(len(data) * keep)]


def corrupted(data: bytes, start: float = 0.5, length: int = 16) -> bytes:
    """The file with ``length`` bytes from ``start`` (a fraction of its size) inverted."""
    offset = int(len(data) * start)
    damaged = bytes(b ^ 0xFF for b in data[offset : offset + length])
    return data[:offset] + damaged + data[offset + length :]


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload))
    )


def png_with_short_image_data(size: tuple[int, int] = (256, 256)) -> bytes:
    """A PNG whose chunks all have valid checksums but whose image data stops halfway."""
    original = png_bytes(size=size)
    start = original.index(b"IDAT") - 4
    (length,) = struct.unpack(">I", original[start : start + 4])
    idat = original[start + 8 : start + 8 + length]
    return (
        original[:start] + png_chunk(b"IDAT", idat[: length // 2]) + original[start + 12 + length :]
    )


def solid_bilevel_png_bytes(width: int = 20_000, height: int = 20_000) -> bytes:
    """A complete, valid all-black 1-bit PNG, built row by row: 20000×20000 is about 50 kB."""
    compressor = zlib.compressobj(9)
    row = bytes(1 + (width + 7) // 8)  # filter type 0, then the packed bits
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def dicom_pixels(rows: int = 48, columns: int = 64, bits_stored: int = 12) -> np.ndarray:
    """Unsigned stored values from 0 to 2**bits_stored - 1 (both ends present)."""
    return gradient((columns, rows), bits_stored).astype(np.uint16)


def dicom_dataset(
    *,
    pixels: np.ndarray | None = None,
    photometric: str = "MONOCHROME1",
    bits_stored: int = 12,
    pixel_representation: int = 0,
    pixel_spacing: tuple[float, float] | str | None = (0.1, 0.1),
    spacing_keyword: str = "PixelSpacing",
    window: tuple[float, float] | None = (2048.0, 4096.0),
) -> FileDataset:
    """A single-frame DX image (16 bits allocated) full of identifying attributes.

    ``pixels`` defaults to ``dicom_pixels(bits_stored=bits_stored)`` and is stored as its
    raw bytes (pass int16 values with ``pixel_representation=1``). ``pixel_spacing`` may be
    a raw DS string such as ``"nan\\\\0.1"`` to write a value pydicom would not produce.
    """
    if pixels is None:
        pixels = dicom_pixels(bits_stored=bits_stored)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(DX_FOR_PRESENTATION)
    meta.MediaStorageSOPInstanceUID = UID(ORIGINAL_UIDS["SOPInstanceUID"])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.SourceApplicationEntityTitle = "NOWHERE_PACS"
    ds = FileDataset("sample.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = UID(DX_FOR_PRESENTATION)
    for keyword, uid in ORIGINAL_UIDS.items():
        setattr(ds, keyword, UID(uid))
    for keyword, value in PHI.items():
        if keyword[0].isupper():
            setattr(ds, keyword, value)
    ds.Modality = "DX"
    ds.BodyPartExamined = "HAND"
    ds.PatientSex = "F"
    ds.PatientAge = "044Y"
    ds.add_new((0x0009, 0x0010), "LO", "ACME IMAGING")
    ds.add_new((0x0009, 0x1001), "LO", PHI["private"])
    context = Dataset()
    context.PersonName = PHI["nested_person"]
    context.ObservationDateTime = PHI["nested_datetime"]
    context.CodeMeaning = "Positioning"
    ds.AcquisitionContextSequence = [context]
    reference = Dataset()
    reference.ReferencedSOPClassUID = UID(DX_FOR_PRESENTATION)
    reference.ReferencedSOPInstanceUID = UID(PRIOR_SOP_INSTANCE_UID)
    ds.ReferencedImageSequence = [reference]
    other_id = Dataset()
    other_id.PatientID = PHI["OtherPatientIDs"]
    ds.OtherPatientIDsSequence = [other_id]

    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = pixel_representation
    if pixel_spacing is not None:
        raw = (
            pixel_spacing if isinstance(pixel_spacing, str) else "\\".join(map(str, pixel_spacing))
        )
        ds.add_new(spacing_keyword, "DS", raw)
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = pixels.tobytes()
    return ds


def dicom_file_bytes(ds: Dataset, transfer_syntax: str | None = None) -> bytes:
    """``ds`` written as a Part 10 file, compressed first when ``transfer_syntax`` is given."""
    if transfer_syntax is not None:
        ds.compress(transfer_syntax)
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def dicom_with_malformed_rows_bytes() -> bytes:
    """A sample DICOM whose Rows (US) element is 3 bytes long, which pydicom cannot parse."""
    data = dicom_bytes()
    rows = b"\x28\x00\x10\x00US\x02\x00"  # (0028,0010) US, length 2, explicit VR LE
    start = data.index(rows)
    malformed = b"\x28\x00\x10\x00US\x03\x00" + b"\x30\x00\x00"
    return data[:start] + malformed + data[start + len(rows) + 2 :]


def dicom_bytes(transfer_syntax: str | None = None, **dataset_options) -> bytes:
    """``dicom_dataset(**dataset_options)`` as a file; e.g. ``dicom_bytes(RLELossless)``."""
    return dicom_file_bytes(dicom_dataset(**dataset_options), transfer_syntax)

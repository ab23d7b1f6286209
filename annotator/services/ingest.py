"""Storing radiographs: decode and validate, de-duplicate by pixel digest, write files.

Files go through Django's storage API, so media can live on the file system or in an
S3-compatible store. A failed ingest removes the files it wrote (``FileJournal``), so
that a refused upload or a rolled-back import leaves nothing behind.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.utils.text import get_valid_filename

from annotator.imaging import DecodedImage, decode_image, encode_png
from annotator.models import Image, ReviewStatus, Split


@dataclass
class FileJournal:
    """The storage names written during one ingest, deleted again if it fails."""

    written: list[tuple[object, str]] = field(default_factory=list)

    def record(self, field_file) -> None:
        self.written.append((field_file.storage, field_file.name))

    def discard(self) -> None:
        for storage, name in self.written:
            storage.delete(name)
        self.written.clear()


@contextlib.contextmanager
def file_journal() -> Iterator[FileJournal]:
    """Yield a journal; on an exception, delete every file it recorded, then re-raise."""
    journal = FileJournal()
    try:
        yield journal
    except BaseException:
        journal.discard()
        raise


@dataclass(frozen=True)
class StoredImage:
    image: Image
    created: bool


def upload_storage_name(file_name: str, decoded: DecodedImage) -> str:
    """``uploads/<digest>-<safe name>.<ext>``: unique per picture, readable by a person."""
    stem = get_valid_filename(PurePosixPath(file_name).stem) or "image"
    return f"uploads/{decoded.sha256[:12]}-{stem}{stored_suffix(decoded)}"


def stored_suffix(decoded: DecodedImage) -> str:
    return ".jpg" if decoded.source_format == "jpeg" else ".png"


def displayable_bytes(decoded: DecodedImage, data: bytes) -> bytes:
    """What ``Image.file`` holds: the JPEG as uploaded (re-encoding would lose quality),
    otherwise a lossless grayscale PNG of the decoded pixels (which also drops any
    metadata chunks the original PNG carried)."""
    if decoded.source_format == "jpeg":
        return data
    return encode_png(decoded.pixels)


def store_image(
    dataset,
    data: bytes,
    file_name: str,
    *,
    source: str,
    split: str = Split.POOL,
    status: str = ReviewStatus.UNLABELED,
    storage_name: str | None = None,
    journal: FileJournal | None = None,
) -> StoredImage:
    """Decode ``data`` and store it in ``dataset`` unless the same pixels are there.

    Raises ``annotator.imaging.ImageRejected`` (a ``ValueError``) naming the file and the
    reason, and ``ValidationSplitFrozen`` when the image would enter a frozen validation
    split. Nothing is written in either case.
    """
    decoded = decode_image(data, file_name, max_pixels=settings.MAX_IMAGE_PIXELS)
    existing = Image.objects.filter(dataset=dataset, sha256=decoded.sha256).first()
    if existing:
        return StoredImage(existing, created=False)
    spacing = decoded.pixel_spacing or (None, None)
    image = Image(
        dataset=dataset,
        file_name=file_name,
        sha256=decoded.sha256,
        width=decoded.width,
        height=decoded.height,
        bit_depth=decoded.bit_depth,
        photometric_interpretation=decoded.photometric,
        window_center=decoded.window_center,
        window_width=decoded.window_width,
        pixel_spacing_row=spacing[0],
        pixel_spacing_col=spacing[1],
        source=source,
        split=split,
        status=status,
    )
    image.check_validation_split_frozen()
    name = storage_name or upload_storage_name(file_name, decoded)
    with file_journal() as written:
        image.file.save(name, ContentFile(displayable_bytes(decoded, data)), save=False)
        written.record(image.file)
        if decoded.deidentified_dicom is not None:
            dicom_name = PurePosixPath(name).with_suffix(".dcm").name
            image.original.save(dicom_name, ContentFile(decoded.deidentified_dicom), save=False)
            written.record(image.original)
        try:
            with transaction.atomic():
                image.save()
        except IntegrityError:
            # the same pixels arrived concurrently: keep theirs, drop our files
            duplicate = Image.objects.filter(dataset=dataset, sha256=decoded.sha256).first()
            if duplicate is None:
                raise
            written.discard()
            return StoredImage(duplicate, created=False)
    if journal is not None:  # an enclosing import removes these files if it fails later
        journal.written.extend(written.written)
    return StoredImage(image, created=True)

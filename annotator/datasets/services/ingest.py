"""The one way images come in: size check, decode and validate, de-duplicate by pixel
digest, write files, and announce ``images_added`` once the rows are committed.

Every way in calls this module: the upload API, the web form, quick read's "add to the
dataset" (``add_image``) and the COCO import (``store_image`` inside its own transaction,
then ``announce_images_added``).

Files go through Django's storage API, so media can live on the file system or in an
S3-compatible store. A failed ingest removes the files it wrote (``FileJournal``), so
that a refused upload or a rolled-back import leaves nothing behind.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.utils.text import get_valid_filename

from annotator.datasets.models import Image, ReviewStatus, Split
from annotator.datasets.signals import images_added
from annotator.errors import TooLarge
from annotator.imaging import DecodedImage, decode_image, encode_png

# Hex digits of the pixel digest an anonymised upload is named by (64 bits: unique).
ANONYMOUS_NAME_DIGITS = 16


class UploadTooLarge(TooLarge):
    """Over ``MAX_UPLOAD_BYTES``."""


def check_request_size(content_length: str | None) -> None:
    """Refuse a request whose declared body is over the limit before reading it."""
    try:
        length = int(content_length or 0)
    except ValueError:
        return
    if length > settings.MAX_UPLOAD_BYTES:
        raise UploadTooLarge(
            f"the request is {length} bytes, over the upload limit of {settings.MAX_UPLOAD_BYTES} bytes"
        )


def check_upload_size(uploaded: UploadedFile) -> None:
    if uploaded.size > settings.MAX_UPLOAD_BYTES:
        raise UploadTooLarge(
            f"{uploaded.name} is {uploaded.size} bytes, over the upload limit of "
            f"{settings.MAX_UPLOAD_BYTES} bytes"
        )


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
    """``uploads/<digest>-<safe name>.<ext>``: unique per picture, readable by a person
    (an anonymised upload: ``uploads/<anonymous name>``)."""
    if file_name == anonymous_name(decoded):
        return f"uploads/{file_name}"
    stem = get_valid_filename(PurePosixPath(file_name).stem) or "image"
    return f"uploads/{decoded.sha256[:12]}-{stem}{stored_suffix(decoded)}"


def stored_suffix(decoded: DecodedImage) -> str:
    kept_as_jpeg = decoded.source_format == "jpeg" and decoded.exif_orientation is None and decoded.damaged is None
    return ".jpg" if kept_as_jpeg else ".png"


def displayable_bytes(decoded: DecodedImage, data: bytes) -> bytes:
    """What ``Image.file`` holds: an intact, upright JPEG as uploaded (re-encoding would
    lose quality), otherwise a lossless grayscale PNG of the decoded pixels (which drops
    any metadata chunks, and stores EXIF-rotated or damaged JPEGs as every reader of the
    stored file must see them)."""
    return data if stored_suffix(decoded) == ".jpg" else encode_png(decoded.pixels)


def anonymous_name(decoded: DecodedImage) -> str:
    """A name that says nothing about the patient: the pixel digest's prefix and the
    stored format (``3f2a…c1.png``)."""
    return f"{decoded.sha256[:ANONYMOUS_NAME_DIGITS]}{stored_suffix(decoded)}"


def renamed(decoded: DecodedImage, old: str, new: str) -> DecodedImage:
    """``decoded`` with ``old`` replaced by ``new`` in the messages kept on the image."""
    return replace(
        decoded,
        warnings=tuple(warning.replace(old, new) for warning in decoded.warnings),
        damaged=decoded.damaged and decoded.damaged.replace(old, new),
    )


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
    allow_damaged: bool = False,
    anonymize_name: bool = False,
) -> StoredImage:
    """Decode ``data`` and store it in ``dataset`` unless the same pixels are there.

    ``allow_damaged`` stores a JPEG that ends early as far as it decodes, marked
    ``damage``. ``anonymize_name`` keeps ``anonymous_name`` instead of ``file_name``
    (upload names often carry patient identifiers).

    Raises ``annotator.imaging.ImageRejected`` (a ``ValueError``) naming the file and the
    reason, and ``ValidationSplitFrozen`` when the image would enter a frozen validation
    split. Nothing is written in either case.
    """
    decoded = decode_image(data, file_name, max_pixels=settings.MAX_IMAGE_PIXELS, allow_damaged=allow_damaged)
    if anonymize_name:
        decoded = renamed(decoded, file_name, anonymous_name(decoded))
        file_name = anonymous_name(decoded)
    existing = Image.objects.filter(dataset=dataset, sha256=decoded.sha256).first()
    if existing:
        return StoredImage(existing, created=False)
    return store_decoded(
        dataset, decoded, data, file_name, source=source, split=split, status=status,
        storage_name=storage_name, journal=journal,
    )


def store_decoded(
    dataset,
    decoded: DecodedImage,
    data: bytes,
    file_name: str,
    *,
    source: str,
    split: str,
    status: str,
    storage_name: str | None = None,
    journal: FileJournal | None = None,
) -> StoredImage:
    """Store pixels ``decode_image`` returned for ``data`` (an import decodes first, to
    compare sizes and find copies). Same rules and errors as ``store_image``."""
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
        exif_orientation=decoded.exif_orientation,
        damage=decoded.damaged or "",
        decode_warnings=list(decoded.warnings),
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


def announce_images_added(dataset_id: int, image_ids: list[int]) -> None:
    """Send ``images_added`` once the current transaction commits (at once outside one)."""
    if image_ids:
        transaction.on_commit(
            lambda: images_added.send(sender=Image, dataset_id=dataset_id, image_ids=list(image_ids))
        )


def add_image(dataset, data: bytes, file_name: str, *, source: str, split: str = Split.POOL) -> StoredImage:
    """Store one image that arrived on its own (upload, web form, quick read) and
    announce it. With ``dataset.anonymize_upload_names`` (the default) it is stored and
    exported under ``anonymous_name``, not the name it came with. Raises ``ImageRejected`` or ``ValidationSplitFrozen``; nothing is stored
    then."""
    stored = store_image(
        dataset, data, file_name, source=source, split=split, anonymize_name=dataset.anonymize_upload_names
    )
    if stored.created:
        announce_images_added(dataset.pk, [stored.image.pk])
    return stored


def accept_upload(dataset, uploaded: UploadedFile, *, split: str, source: str) -> StoredImage:
    """An uploaded file: the size limit, then ``add_image``."""
    check_upload_size(uploaded)
    return add_image(dataset, uploaded.read(), uploaded.name, source=source, split=split)

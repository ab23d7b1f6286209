"""Uploads from the browser and the API: size limit, then the ingest path."""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from annotator.services.ingest import StoredImage, store_image
from annotator.tasks import enqueue_proposals_for_new_images


class UploadTooLarge(ValueError):
    """Over ``MAX_UPLOAD_BYTES``; answered with 413."""


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


def accept_upload(dataset, uploaded: UploadedFile, *, split: str, source: str) -> StoredImage:
    """Store one uploaded radiograph. Raises ``UploadTooLarge``, ``ImageRejected`` or
    ``ValidationSplitFrozen``; nothing is stored when it raises."""
    if uploaded.size > settings.MAX_UPLOAD_BYTES:
        raise UploadTooLarge(
            f"{uploaded.name} is {uploaded.size} bytes, over the upload limit of "
            f"{settings.MAX_UPLOAD_BYTES} bytes"
        )
    stored = store_image(dataset, uploaded.read(), uploaded.name, source=source, split=split)
    if stored.created:
        enqueue_proposals_for_new_images(dataset.pk, [stored.image.pk])
    return stored

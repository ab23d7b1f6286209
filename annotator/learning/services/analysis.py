"""One-image analysis by a dataset's production model: quick read in the browser and
``POST /api/analyze`` are one path.

The web process stores the upload and a windowed preview as a ``QuickRead`` row and
publishes ``analyze_upload`` to the ``inference`` queue (``create_quick_read``); it never
waits for the worker and never imports torch. The worker (``analyze_upload``) loads the
production version and writes the result on the row, which the page and API clients
poll (``GET /api/review/quick-reads/<id>/``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone
from django.utils.text import get_valid_filename

from annotator.datasets.models import Photometric
from annotator.datasets.services.ingest import check_upload_size
from annotator.errors import Unavailable
from annotator.imaging import decode_image, encode_png
from annotator.learning.dispatch import publish_analysis
from annotator.learning.models import QuickRead, QuickReadState
from annotator.learning.selectors import policy_of, production_version, serving_version


class AnalysisUnavailable(Unavailable):
    """The dataset has no production model to read the image with."""


def windowed_preview(pixels: np.ndarray, center: float, width: float, photometric: str) -> np.ndarray:
    """8-bit display pixels: the default window applied, MONOCHROME1 inverted."""
    low = center - width / 2
    shown = np.clip((pixels.astype(np.float32) - low) / width, 0.0, 1.0)
    if photometric == Photometric.MONOCHROME1:
        shown = 1.0 - shown
    return np.rint(shown * 255).astype(np.uint8)


def create_quick_read(dataset, user, uploaded) -> QuickRead:
    """Decode and store an upload with its preview, and publish the analysis on commit.
    Raises ``AnalysisUnavailable`` without a production model, ``UploadTooLarge`` or
    ``ImageRejected``; nothing is stored then."""
    if production_version(dataset) is None:
        raise AnalysisUnavailable(
            f"dataset {dataset.name!r} has no production model yet: train and promote one first"
        )
    check_upload_size(uploaded)
    data = uploaded.read()
    decoded = decode_image(data, uploaded.name, max_pixels=settings.MAX_IMAGE_PIXELS)
    stem = get_valid_filename(Path(uploaded.name).stem) or "upload"
    preview = windowed_preview(decoded.pixels, decoded.window_center, decoded.window_width, decoded.photometric)
    with transaction.atomic():
        read = QuickRead(dataset=dataset, user=user, file_name=uploaded.name,
                         width=decoded.width, height=decoded.height)
        read.upload.save(f"{decoded.sha256[:12]}-{stem}{Path(uploaded.name).suffix.lower()}",
                         ContentFile(data), save=False)
        read.preview.save(f"{decoded.sha256[:12]}-{stem}-preview.png", ContentFile(encode_png(preview)), save=False)
        read.save()
        transaction.on_commit(lambda: publish_analysis(read.pk))
    return read


def read_image(dataset, data: bytes, filename: str) -> dict:
    """Worker side: the production model's reading of one image (fracture probability,
    boxes at or above the display threshold, the serving version)."""
    from annotator.learning.engine_cache import engine_for
    from annotator.learning.media import model_view

    version = production_version(dataset)
    if version is None:
        raise AnalysisUnavailable(f"dataset {dataset.name!r} has no production model yet")
    decoded = decode_image(data, filename, max_pixels=settings.MAX_IMAGE_PIXELS)
    pixels = model_view(decoded.pixels, decoded.photometric, decoded.bit_depth)
    detections = engine_for(version).predict([pixels])[0]
    names = dict(dataset.categories.values_list("coco_id", "name"))
    threshold = policy_of(dataset).display_threshold
    return {
        "fracture_probability": float(detections.scores.max()) if len(detections.scores) else 0.0,
        "boxes": [
            {
                "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                "category": int(label),
                "category_name": names.get(int(label), str(label)),
                "score": float(score),
            }
            for (x0, y0, x1, y1), score, label in zip(
                detections.boxes, detections.scores, detections.labels, strict=True
            )
            if score >= threshold
        ],
        "serving_version": serving_version(dataset) or version.name,
        "model_version": version,
    }


def analyze_upload(quick_read_id: int) -> str:
    """Worker side: read one stored upload and write the result (or the error) on its
    row. Idempotent: a row that is no longer queued is left alone."""
    read = QuickRead.objects.select_related("dataset").get(pk=quick_read_id)
    if read.state != QuickReadState.QUEUED:
        return f"quick read {read.pk} is {read.state}: nothing to do"
    try:
        if production_version(read.dataset) is None:
            raise AnalysisUnavailable(f"dataset {read.dataset.name!r} has no production model yet")
        with default_storage.open(read.upload.name, "rb") as stored:
            reading = read_image(read.dataset, stored.read(), read.file_name)
    except Exception as exc:  # noqa: BLE001 - stored for the page; the task itself succeeds
        QuickRead.objects.filter(pk=read.pk, state=QuickReadState.QUEUED).update(
            state=QuickReadState.FAILED, error=str(exc), model_version=production_version(read.dataset),
            finished_at=timezone.now(),
        )
        return f"quick read {read.pk} failed"
    QuickRead.objects.filter(pk=read.pk, state=QuickReadState.QUEUED).update(
        state=QuickReadState.DONE, model_version=reading["model_version"], boxes=reading["boxes"],
        serving_version=reading["serving_version"], fracture_probability=reading["fracture_probability"],
        finished_at=timezone.now(),
    )
    return f"quick read {read.pk} done"

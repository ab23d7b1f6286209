"""One-image analysis with a dataset's production model ("what does the model see?").

The web process never imports torch: ``request_analysis`` (web side) validates the
image, enqueues ``analyze_image`` on the ``inference`` queue and waits for its result
with a timeout; the task calls ``analyze_image_bytes`` (worker side), which loads the
production version's weights and predicts. Both functions are the reusable entry points
(the API's ``POST /api/analyze`` and the browser's quick read).
"""

from __future__ import annotations

import base64

import numpy as np
from celery import shared_task
from celery.exceptions import TimeoutError as CeleryTimeout
from django.conf import settings

from annotator.imaging import ImageRejected, decode_image
from annotator.models import Dataset
from annotator.services.media import model_view
from annotator.services.versions import policy_for, production_version, serving_version


class AnalysisUnavailable(Exception):
    """No production model, or no inference worker answered in time (503)."""


def model_input(data: bytes, filename: str) -> tuple[np.ndarray, int, int]:
    """Decoded pixels as the model sees them (MONOCHROME1 turned like the training
    loader does), with width and height. Raises ``ImageRejected``."""
    decoded = decode_image(data, filename, max_pixels=settings.MAX_IMAGE_PIXELS)
    return model_view(decoded.pixels, decoded.photometric, decoded.bit_depth), decoded.width, decoded.height


def analyze_image_bytes(dataset_id: int, data: bytes, filename: str) -> dict:
    """Worker side: the production model's reading of one image. Raises
    ``AnalysisUnavailable`` when the dataset has no production version and
    ``ImageRejected`` for an unreadable image."""
    from annotator.tasks import engine_for

    dataset = Dataset.objects.get(pk=dataset_id)
    version = production_version(dataset)
    if version is None:
        raise AnalysisUnavailable(f"dataset {dataset.name!r} has no production model yet")
    pixels, width, height = model_input(data, filename)
    detections = engine_for(version).predict([pixels])[0]
    names = dict(dataset.categories.values_list("coco_id", "name"))
    threshold = policy_for(dataset).display_threshold
    boxes = [
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
    ]
    return {
        "fracture_probability": float(detections.scores.max()) if len(detections.scores) else 0.0,
        "boxes": boxes,
        "model_version": serving_version(dataset) or version.name,
        "width": width,
        "height": height,
    }


@shared_task(name="annotator.analyze_image", ignore_result=False, acks_late=False)
def analyze_image(dataset_id: int, data_b64: str, filename: str) -> dict:
    """Celery wrapper; expected failures come back as ``{"error": ...}`` (a plain JSON
    result), so the web process needs no exception types from the worker."""
    try:
        return analyze_image_bytes(dataset_id, base64.b64decode(data_b64), filename)
    except (AnalysisUnavailable, ImageRejected) as exc:
        return {"error": str(exc), "unavailable": isinstance(exc, AnalysisUnavailable)}


def request_analysis(dataset: Dataset, data: bytes, filename: str) -> dict:
    """Web side: validate, enqueue, wait up to ``ANALYZE_TIMEOUT_SECONDS``.

    Raises ``ImageRejected`` (400) before anything is queued, and
    ``AnalysisUnavailable`` (503) when there is no production model or no worker
    answers in time (the queued job is revoked and expires unread).
    """
    if production_version(dataset) is None:
        raise AnalysisUnavailable(f"dataset {dataset.name!r} has no production model yet")
    decode_image(data, filename, max_pixels=settings.MAX_IMAGE_PIXELS)
    timeout = settings.ANALYZE_TIMEOUT_SECONDS
    result = analyze_image.apply_async(
        args=[dataset.pk, base64.b64encode(data).decode("ascii"), filename], expires=timeout
    )
    try:
        answer = result.get(timeout=timeout, propagate=True, disable_sync_subtasks=False)
    except CeleryTimeout:
        result.revoke()
        raise AnalysisUnavailable(
            f"no inference worker answered within {timeout:g} s; is a worker consuming the "
            "'inference' queue running?"
        ) from None
    finally:
        result.forget()
    if "error" in answer:
        if answer.get("unavailable"):
            raise AnalysisUnavailable(answer["error"])
        raise ImageRejected(answer["error"])
    return answer

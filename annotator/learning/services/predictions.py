"""Stored predictions and the proposals readers see.

A ``Prediction`` keeps everything a model version said about an image (all candidate
boxes with class probabilities, the flip-TTA boxes, the embedding), so rankings can be
recomputed without running the model again. Proposals are ``Annotation`` rows with
``source="model"`` made from the boxes above the dataset's display threshold, each
carrying its score and the serving version that proposed it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from django.db import transaction

from annotator.datasets.models import Annotation, AnnotationSource, Image, ReviewStatus
from annotator.datasets.services.annotations import NewBox, create_boxes, delete_box
from annotator.learning.dispatch import publish_proposals
from annotator.learning.models import ModelVersion, Prediction
from annotator.learning.selectors import policy_of, production_version, serving_version
from annotator.learning.services.inference import mark_requested
from ml_backend.contract import Detections

PREDICT_BATCH = 8



def detections_to_json(detections: Detections) -> list[dict]:
    return [
        {
            "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
            "category": int(label),
            "score": float(score),
            "probs": [round(float(p), 6) for p in probs],
        }
        for (x0, y0, x1, y1), label, score, probs in zip(
            detections.boxes, detections.labels, detections.scores, detections.class_probs, strict=True
        )
    ]


def detections_from_json(boxes: list[dict], embedding: bytes, n_columns: int) -> Detections:
    xywh = np.array([box["bbox"] for box in boxes], dtype=np.float32).reshape(-1, 4)
    return Detections(
        boxes=np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1),
        scores=np.array([box["score"] for box in boxes], dtype=np.float32),
        labels=np.array([box["category"] for box in boxes], dtype=np.int64),
        class_probs=np.array([box["probs"] for box in boxes], dtype=np.float32).reshape(-1, n_columns),
        embedding=np.frombuffer(bytes(embedding), dtype="<f4"),
    )


def prediction_detections(prediction: Prediction, flipped: bool = False) -> Detections:
    columns = 1 + len(prediction.model_version.category_ids)
    boxes = prediction.flipped_boxes if flipped else prediction.boxes
    return detections_from_json(boxes or [], prediction.embedding, columns)


def store_prediction(
    image: Image, version: ModelVersion, detections: Detections, flipped: Detections | None = None
) -> tuple[Prediction, bool]:
    """Store what ``version`` found in ``image``; a second call for the same pair stores
    nothing (the unique constraint makes a duplicate delivery harmless)."""
    return Prediction.objects.get_or_create(
        image=image,
        model_version=version,
        defaults={
            "boxes": detections_to_json(detections),
            "flipped_boxes": detections_to_json(flipped) if flipped is not None else None,
            "fracture_probability": float(detections.scores.max()) if len(detections.scores) else 0.0,
            "embedding": np.asarray(detections.embedding, dtype="<f4").tobytes(),
        },
    )


def replace_proposals(image: Image, prediction: Prediction, threshold: float, serving_version: str) -> int:
    """Show ``prediction``'s boxes above ``threshold`` as the image's proposals.

    For images nobody has finished: waiting ones (unlabeled or proposed), and open ones
    that hold no box at all yet (a reader who opened an image before the first model came
    gets its proposals; boxes a reader is editing are never replaced). Older model
    proposals are deleted with a revision. Locks the image row, so two workers cannot
    interleave. A second call with the same serving version changes nothing. Returns the
    number of proposals created.
    """
    with transaction.atomic():
        image = Image.objects.select_for_update().get(pk=image.pk)
        open_and_empty = image.status == ReviewStatus.IN_REVIEW and not image.annotations.filter(
            is_deleted=False
        ).exists()
        if image.status not in ReviewStatus.waiting() and not open_and_empty:
            return 0
        current = Annotation.objects.filter(image=image, source=AnnotationSource.MODEL, is_deleted=False)
        if current.exists() and not current.exclude(serving_version=serving_version).exists():
            return 0
        retire_proposals(current, reason=f"replaced by {serving_version}")
        categories = {c.coco_id: c for c in image.dataset.categories.all()}
        new = [
            NewBox(image, categories[box["category"]], *box["bbox"], source=AnnotationSource.MODEL,
                   score=min(max(box["score"], 0.0), 1.0), serving_version=serving_version)
            for box in prediction.boxes
            if box["score"] >= threshold and box["category"] in categories
        ]
        created = create_boxes(clip_boxes(new), reason=f"proposed by {serving_version}")
        if not open_and_empty:  # an open image stays in its reader's hands
            image.status = ReviewStatus.PROPOSED if created else ReviewStatus.UNLABELED
            image.save(update_fields=["status", "updated_at"])
    return len(created)


def clip_boxes(boxes: Sequence[NewBox]) -> list[NewBox]:
    """Model boxes can overshoot the border by a fraction of a pixel or more: clip them
    onto the image and drop any that vanish."""
    clipped = []
    for box in boxes:
        x0, y0 = max(box.x, 0.0), max(box.y, 0.0)
        x1, y1 = min(box.x + box.w, box.image.width), min(box.y + box.h, box.image.height)
        if x1 - x0 >= 1 and y1 - y0 >= 1:
            clipped.append(NewBox(box.image, box.category, x0, y0, x1 - x0, y1 - y0, box.source,
                                  box.score, box.serving_version))
    return clipped


def retire_proposals(proposals, *, reason: str) -> None:
    """Soft-delete model proposals, each with a revision."""
    for annotation_id, version in proposals.values_list("pk", "version"):
        delete_box(annotation_id, version, actor=None, reason=reason)


def propose_images(dataset_id: int, version_id: int, image_ids: list[int] | None = None) -> int:
    """Predict the sampleable images (all, or ``image_ids``) with the version; store the
    predictions and refresh the proposals of images nobody is reading. Images already
    predicted by this version are skipped, so a redelivered task resumes. Worker only."""
    from annotator.learning.engine_cache import engine_for
    from annotator.learning.media import model_pixels
    from ml_backend.engines import predict_hflip

    version = ModelVersion.objects.select_related("dataset").get(pk=version_id)
    policy = policy_of(version.dataset)
    serving = serving_version(version.dataset) or version.name
    images = Image.objects.filter(dataset_id=dataset_id).sampleable().order_by("pk")
    if image_ids is not None:
        images = images.filter(pk__in=image_ids)
    done = set(Prediction.objects.filter(model_version=version).values_list("image_id", flat=True))
    engine = engine_for(version)
    todo = [image for image in images if image.pk not in done]
    for start in range(0, len(todo), PREDICT_BATCH):
        batch = todo[start : start + PREDICT_BATCH]
        pixels = [model_pixels(image) for image in batch]
        found = engine.predict(pixels)
        flipped = predict_hflip(engine, pixels) if policy.ranking_strategy == "localization" else [None] * len(batch)
        for image, detections, mirrored in zip(batch, found, flipped, strict=True):
            store_prediction(image, version, detections, mirrored)
    proposed = 0
    for prediction in Prediction.objects.filter(model_version=version, image__in=images).select_related("image"):
        proposed += replace_proposals(prediction.image, prediction, policy.display_threshold, serving)
    return proposed


def request_proposals(dataset_id: int, image_ids: list[int]) -> bool:
    """Queue proposals of the production version for these images; False when the
    dataset has no production version (nothing to propose with)."""
    version = production_version(dataset_id)
    if version is None or not image_ids:
        return False
    mark_requested(version.pk)  # the sweeper asks again if this is lost
    publish_proposals(dataset_id, version.pk, list(image_ids))
    return True

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

from annotator.models import (
    Annotation,
    AnnotationSource,
    Image,
    ModelVersion,
    Prediction,
    ReviewStatus,
)
from annotator.services.annotations import NewBox, create_boxes, delete_box
from ml_backend.contract import Detections

# Images whose proposals may be replaced by a newer model: nobody is reading them yet.
REPLACEABLE_STATUSES = (ReviewStatus.UNLABELED, ReviewStatus.PROPOSED)


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

    Only for images nobody is reading (unlabeled or proposed); older model proposals are
    deleted with a revision. Locks the image row, so two workers cannot interleave. A
    second call with the same serving version changes nothing. Returns the number of
    proposals created.
    """
    with transaction.atomic():
        image = Image.objects.select_for_update().get(pk=image.pk)
        if image.status not in REPLACEABLE_STATUSES:
            return 0
        current = Annotation.objects.filter(image=image, source=AnnotationSource.MODEL, is_deleted=False)
        if current.exists() and not current.exclude(model_version=serving_version).exists():
            return 0
        retire_proposals(current, reason=f"replaced by {serving_version}")
        categories = {c.coco_id: c for c in image.dataset.categories.all()}
        new = [
            NewBox(image, categories[box["category"]], *box["bbox"], source=AnnotationSource.MODEL,
                   score=min(max(box["score"], 0.0), 1.0), model_version=serving_version)
            for box in prediction.boxes
            if box["score"] >= threshold and box["category"] in categories
        ]
        created = create_boxes(clip_boxes(new), reason=f"proposed by {serving_version}")
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
                                  box.score, box.model_version))
    return clipped


def retire_proposals(proposals, *, reason: str) -> None:
    """Soft-delete model proposals, each with a revision."""
    for annotation_id, version in proposals.values_list("pk", "version"):
        delete_box(annotation_id, version, actor=None, reason=reason)

"""What Label Studio's requests read from and write to our database.

Every write goes through ``annotator.datasets.services.annotations`` (revisions, optimistic
versions) inside one transaction per Label Studio annotation: a result that cannot be
converted stores nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from annotator.audit.services import record_revision
from annotator.datasets.models import (
    Annotation,
    AnnotationRevision,
    AnnotationSource,
    Image,
    ReviewStatus,
)
from annotator.datasets.services.annotations import NewBox, create_boxes, delete_box
from annotator.labelstudio.convert import ConversionError, box_to_region, rectangles, region_to_box
from annotator.learning.models import Prediction, RankedImage, Ranking
from annotator.learning.selectors import policy_of, production_version, serving_version

# Two boxes closer than this (pixels, every edge) are the same box: a re-sent annotation
# leaves unchanged boxes untouched instead of deleting and re-creating them.
SAME_BOX_PX = 0.5


def annotation_reason(ls_annotation_id) -> str:
    return f"label studio annotation {ls_annotation_id}"


@dataclass(frozen=True)
class TaskPrediction:
    """One entry of a /predict answer."""

    result: list[dict]
    score: float | None
    model_version: str

    def to_json(self) -> dict:
        answer = {"result": self.result, "model_version": self.model_version}
        if self.score is not None:
            answer["score"] = self.score
        return answer


def latest_scores(dataset, image_ids) -> dict[int, float]:
    """Each image's score in the dataset's latest ranking (its uncertainty)."""
    ranking = Ranking.objects.filter(dataset=dataset).order_by("-created_at", "-id").first()
    if ranking is None:
        return {}
    return dict(
        RankedImage.objects.filter(ranking=ranking, image_id__in=image_ids).values_list("image_id", "score")
    )


def stored_predictions(images: list[Image]) -> tuple[dict[int, TaskPrediction], list[Image]]:
    """Predictions of the production version for ``images`` (all of one dataset) as
    Label Studio results, and the images that have none stored yet.

    A task without a stored prediction is answered with an empty result under the
    version string ``<serving>.pending``: Label Studio stores it but, as it differs
    from the backend's current version, asks again after the proposals exist.
    """
    if not images:
        return {}, []
    dataset = images[0].dataset
    version = production_version(dataset)
    serving = serving_version(dataset) or "none"
    scores = latest_scores(dataset, [image.pk for image in images])
    rows = (
        {p.image_id: p for p in Prediction.objects.filter(model_version=version, image__in=images)}
        if version is not None
        else {}
    )
    names = dict(dataset.categories.values_list("coco_id", "name"))
    threshold = policy_of(dataset).display_threshold
    answers, missing = {}, []
    for image in images:
        prediction = rows.get(image.pk)
        if prediction is None:
            missing.append(image)
            answers[image.pk] = TaskPrediction([], scores.get(image.pk), f"{serving}.pending")
            continue
        result = [
            box_to_region(box["bbox"], names.get(box["category"], str(box["category"])), box["score"],
                          image.width, image.height)
            for box in prediction.boxes
            if box["score"] >= threshold
        ]
        answers[image.pk] = TaskPrediction(result, scores.get(image.pk), serving)
    return answers, missing


def _same(annotation: Annotation, box: NewBox) -> bool:
    return annotation.category_id == box.category.pk and all(
        abs(a - b) <= SAME_BOX_PX
        for a, b in ((annotation.x, box.x), (annotation.y, box.y), (annotation.w, box.w), (annotation.h, box.h))
    )


def boxes_from_result(image: Image, result) -> list[NewBox]:
    """Convert a Label Studio result into boxes of ``image``; categories by name, which
    must exist in the dataset (the pushed label config lists exactly those)."""
    categories = {category.name: category for category in image.dataset.categories.all()}
    boxes = []
    for region in rectangles(result):
        name, x, y, w, h = region_to_box(region, image.width, image.height)
        if name not in categories:
            raise ConversionError(f"label {name!r} is not a category of dataset {image.dataset.name!r}")
        boxes.append(NewBox(image=image, category=categories[name], x=x, y=y, w=w, h=h))
    return boxes


def apply_annotation(image: Image, result, *, ls_annotation_id, actor) -> dict:
    """Make the image's current boxes equal Label Studio's annotation.

    Boxes already equal stay; the others (proposals included) are deleted with a
    revision; new ones are created with one. The image becomes *labeled*, or *labeled
    negative* when the annotation has no rectangle. Raises ``ConversionError`` (then
    nothing is stored) and the annotation services' errors.
    """
    reason = annotation_reason(ls_annotation_id)
    boxes = boxes_from_result(image, result)
    with transaction.atomic():
        current = list(Image.objects.select_for_update().get(pk=image.pk).annotations.filter(is_deleted=False))
        kept, new = set(), []
        for box in boxes:
            match = next((a for a in current if a.pk not in kept and _same(a, box)), None)
            if match is None:
                new.append(box)
            else:
                kept.add(match.pk)
        for annotation in current:
            if annotation.pk not in kept:
                delete_box(annotation.pk, annotation.version, actor, reason=reason)
        created = create_boxes(new, actor=actor, reason=reason)
        for revision in AnnotationRevision.objects.filter(annotation__in=created):
            record_revision(revision)  # bulk-created revisions send no post_save
        status = ReviewStatus.LABELED if boxes else ReviewStatus.NEGATIVE
        Image.objects.filter(pk=image.pk).update(status=status)
    return {"kept": len(kept), "created": len(created), "deleted": len(current) - len(kept)}


def delete_annotations(ls_annotation_ids, *, datasets, actor) -> int:
    """Delete the current boxes that Label Studio annotations created (within
    ``datasets``); their images go back to *unlabeled* when no box is left."""
    reasons = [annotation_reason(i) for i in ls_annotation_ids]
    deleted = 0
    with transaction.atomic():
        boxes = Annotation.objects.filter(
            is_deleted=False, source=AnnotationSource.HUMAN, image__dataset__in=datasets,
            revisions__reason__in=reasons,
        ).distinct()
        images = set()
        for box in boxes:
            delete_box(box.pk, box.version, actor, reason="label studio annotation deleted")
            images.add(box.image_id)
            deleted += 1
        Image.objects.filter(pk__in=images).exclude(annotations__is_deleted=False).update(
            status=ReviewStatus.UNLABELED
        )
    return deleted

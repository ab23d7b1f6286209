"""REST API of the review page, under ``/api/review/``.

Thin views: each checks access (objects of datasets the user is not a member of answer
404), reads its input and calls one service. Writes to boxes carry the version the
reader saw (a stale one answers 409 with the box's current state) and may carry an
``Idempotency-Key`` header (a UUID): a retried write is answered from its stored receipt.
"""

from __future__ import annotations

import json
import uuid

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from rest_framework import status
from rest_framework.decorators import api_view
from rest_framework.exceptions import NotFound, ParseError, PermissionDenied
from rest_framework.response import Response

from annotator.models import SAMPLEABLE_SPLITS, Annotation, Image, Prediction
from annotator.services import annotations as boxes
from annotator.services import pixel_cache, review
from annotator.services.datasets import can_write, visible_datasets
from annotator.services.versions import policy_for

WORKLIST_PAGE = 100


# --- access -----------------------------------------------------------------------------


def _dataset(request, pk):
    return get_object_or_404(visible_datasets(request.user), pk=pk)


def _image(request, pk):
    return get_object_or_404(
        Image.objects.filter(dataset__in=visible_datasets(request.user)).select_related("dataset"), pk=pk
    )


def _annotation(request, pk):
    return get_object_or_404(
        Annotation.objects.filter(image__dataset__in=visible_datasets(request.user), is_deleted=False)
        .select_related("image__dataset"),
        pk=pk,
    )


def _writable(request, dataset):
    if not can_write(request.user, dataset):
        raise PermissionDenied("only admins and radiologists of this dataset may read and annotate")


# --- payloads ---------------------------------------------------------------------------


def image_view(image: Image) -> dict:
    """What the page shows of one image, read-only: metadata, classes, shown boxes, its
    place in the ranking and its fracture probability (five queries, whatever the
    number of boxes)."""
    ranking = review.ranking_of(image)
    threshold = policy_for(image.dataset).display_threshold
    shown = image.annotations.filter(is_deleted=False).select_related("category", "author").order_by("id")
    prediction = Prediction.objects.filter(image=image).order_by("-created_at").first()
    return {
        "image": {
            "id": image.pk, "dataset": image.dataset_id, "file_name": image.file_name,
            "width": image.width, "height": image.height, "bit_depth": image.bit_depth,
            "photometric": image.photometric_interpretation, "window_center": image.window_center,
            "window_width": image.window_width, "status": image.status, "split": image.split,
            "skip_reason": image.skip_reason, "pixels_url": f"/api/review/images/{image.pk}/pixels/",
        },
        "rank": {
            "strategy": ranking.strategy if ranking else None,
            "position": ranking.position if ranking else None,
            "score": ranking.score if ranking else None,
        },
        "fracture_probability": prediction.fracture_probability if prediction else None,
        "categories": [{"coco_id": c.coco_id, "name": c.name} for c in image.dataset.categories.all()],
        "display_threshold": threshold,
        "boxes": [
            boxes.box_state(a) for a in shown
            if a.source == "human" or (a.score is not None and a.score >= threshold)
        ],
    }


def _reading(image: Image, user, session, filter_name: str = "todo") -> Response:
    """The image the reader now reads, their session, and the image "next" will most
    likely hand out after it (the page prefetches it)."""
    upcoming = review.upcoming_image_id(image.dataset, user, image, filter_name)
    return Response({
        **image_view(image),
        "session": {"id": session.pk, "opened_at": session.opened_at.isoformat()},
        "upcoming": {
            "id": upcoming, "url": f"/api/review/images/{upcoming}/",
            "pixels_url": f"/api/review/images/{upcoming}/pixels/",
        } if upcoming else None,
    })


def _open(image: Image, user) -> Response:
    try:
        session = review.open_image(image, user)
    except review.ImageLeased as exc:
        return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
    return _reading(image, user, session)


# --- idempotent writes ------------------------------------------------------------------


def _write(request, produce) -> Response:
    """Answer ``produce()`` (``(status, body)``), once per Idempotency-Key."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        code, body = produce()
        return Response(body, status=code)
    try:
        key = uuid.UUID(key)
    except ValueError as exc:
        raise ParseError("Idempotency-Key must be a UUID") from exc
    fingerprint = review.request_fingerprint(
        request.method, request.path, json.dumps(request.data, sort_keys=True, default=str).encode()
    )
    code, body = review.idempotent(request.user, key, fingerprint, produce)
    return Response(body, status=code)


def _guarded(action):
    """Run a box write; turn the service's refusals into (status, body)."""
    try:
        return status.HTTP_200_OK, action()
    except boxes.VersionConflict as exc:
        return status.HTTP_409_CONFLICT, {
            "detail": "this box was changed by someone else since you loaded it",
            "current": exc.current,
        }
    except (boxes.InvalidBox, boxes.NotAProposal, review.FinishRefused) as exc:
        return status.HTTP_400_BAD_REQUEST, {"detail": str(exc)}
    except review.ImageLeased as exc:
        return status.HTTP_409_CONFLICT, {"detail": str(exc)}


def _version(data) -> int:
    value = data.get("version")
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ParseError("send the box's version as an integer")
    return value


def _renew(image, user) -> None:
    """Saving is activity: extend the reader's lease when they hold it."""
    review.try_lease(image, user)


# --- worklist ---------------------------------------------------------------------------


def _filter(request) -> str:
    name = request.data.get("filter") if request.method == "POST" else request.query_params.get("filter")
    name = name or "todo"
    if name not in review.FILTERS:
        raise ParseError(f"unknown filter {name!r}; use one of {', '.join(review.FILTERS)}")
    return name


@api_view(["GET"])
def worklist(request, pk):
    dataset = _dataset(request, pk)
    ranking = review.latest_ranking(dataset)
    rows = review.worklist(dataset, request.user, _filter(request)).select_related("lease__user")[:WORKLIST_PAGE]
    return Response({
        "ranking": {"strategy": ranking.strategy, "created_at": ranking.created_at} if ranking else None,
        "images": [
            {"id": i.pk, "file_name": i.file_name, "status": i.status, "rank_position": i.rank_position,
             "rank_score": i.rank_score}
            for i in rows
        ],
    })


def _after(request, dataset):
    after = request.data.get("after")
    if after in (None, ""):
        return None
    image = Image.objects.filter(dataset=dataset, pk=after).first() if str(after).isdigit() else None
    if image is None:
        raise ParseError("after must be an image of this dataset")
    return image


@api_view(["POST"])
def next_image(request, pk):
    dataset = _dataset(request, pk)
    _writable(request, dataset)
    filter_name = _filter(request)
    image = review.claim_next(dataset, request.user, filter_name, after=_after(request, dataset))
    if image is None:
        return Response({"image": None, "detail": "nothing left to read with this filter"})
    return _reading(image, request.user, review.start_reading(image, request.user), filter_name)


@api_view(["POST"])
def previous_image(request, pk):
    dataset = _dataset(request, pk)
    _writable(request, dataset)
    image = review.previous_image(dataset, request.user, _after(request, dataset))
    if image is None:
        return Response({"image": None, "detail": "no earlier image"})
    return _open(image, request.user)


# --- one image --------------------------------------------------------------------------


def _readable(request, pk) -> Image:
    image = _image(request, pk)
    _writable(request, image.dataset)
    if image.split not in SAMPLEABLE_SPLITS:
        raise NotFound("validation and test images are not offered for reading")
    return image


@api_view(["GET"])
def preview(request, pk):
    """The image as ``open`` would show it, without leasing it or starting a reading:
    the page prefetches the image "next" will most likely hand out."""
    return Response(image_view(_readable(request, pk)))


@api_view(["POST"])
def open_image(request, pk):
    return _open(_readable(request, pk), request.user)


@api_view(["GET"])
def pixels(request, pk):
    """The stored values, little-endian, row-major: uint16 for 9-16-bit images, uint8
    for 8-bit ones. Size and depth are in ``X-Width``, ``X-Height``, ``X-Bit-Depth``,
    ``X-Bytes-Per-Pixel`` and ``X-Photometric``."""
    image = _image(request, pk)
    data, bytes_per_pixel = pixel_cache.raw_pixels(image)
    response = HttpResponse(data, content_type="application/octet-stream")
    response["X-Width"], response["X-Height"] = image.width, image.height
    response["X-Bit-Depth"], response["X-Bytes-Per-Pixel"] = image.bit_depth, bytes_per_pixel
    response["X-Photometric"] = image.photometric_interpretation
    response["Cache-Control"] = "private, max-age=86400"
    response["ETag"] = f'"{image.sha256}"'
    return response


@api_view(["POST"])
def heartbeat(request, pk):
    image = _image(request, pk)
    _writable(request, image.dataset)
    try:
        review.renew_lease(image, request.user)
    except review.ImageLeased as exc:
        return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
    return Response({"lease_seconds": review.LEASE_SECONDS})


@api_view(["POST"])
def create_box(request, pk):
    image = _image(request, pk)
    _writable(request, image.dataset)
    data = request.data

    def produce():
        code, body = _guarded(lambda: boxes.box_state(boxes.add_box(
            image, data.get("category"), data.get("x"), data.get("y"), data.get("w"), data.get("h"), request.user
        )))
        return (status.HTTP_201_CREATED if code == status.HTTP_200_OK else code), body

    _renew(image, request.user)
    return _write(request, produce)


@api_view(["PATCH", "DELETE"])
def change_box(request, pk):
    annotation = _annotation(request, pk)
    _writable(request, annotation.image.dataset)
    _renew(annotation.image, request.user)
    if request.method == "DELETE":
        version = _version(request.query_params)
        return _write(request, lambda: _guarded(
            lambda: boxes.box_state(boxes.delete_box(annotation.pk, version, request.user))
        ))
    version = _version(request.data)
    changes = {k: v for k, v in request.data.items() if k != "version"}
    return _write(request, lambda: _guarded(
        lambda: boxes.box_state(boxes.update_box(annotation.pk, version, changes, request.user))
    ))


@api_view(["POST"])
def accept_box(request, pk):
    annotation = _annotation(request, pk)
    _writable(request, annotation.image.dataset)
    _renew(annotation.image, request.user)
    version = _version(request.data)
    return _write(request, lambda: _guarded(
        lambda: boxes.box_state(boxes.accept_proposal(annotation.pk, version, request.user))
    ))


@api_view(["POST"])
def accept_all(request, pk):
    image = _image(request, pk)
    _writable(request, image.dataset)
    threshold = request.data.get("threshold", policy_for(image.dataset).display_threshold)
    if not isinstance(threshold, int | float) or isinstance(threshold, bool) or not 0 <= threshold <= 1:
        raise ParseError("threshold must be a number from 0 to 1")
    _renew(image, request.user)
    return _write(request, lambda: _guarded(lambda: {
        "accepted": [boxes.box_state(a) for a in boxes.accept_proposals_above(image, threshold, request.user)]
    }))


@api_view(["POST"])
def finish(request, pk):
    image = _image(request, pk)
    _writable(request, image.dataset)
    outcome, reason = request.data.get("outcome"), request.data.get("reason", "")
    if not isinstance(reason, str):
        raise ParseError("reason must be text")

    def produce():
        session = review.finish_image(image, request.user, outcome, reason)
        return {"outcome": session.outcome, "seconds": session.seconds, "status": session.image.status}

    return _write(request, lambda: _guarded(produce))


@api_view(["GET"])
def stats(request, pk):
    return Response(review.reader_stats(_dataset(request, pk)))

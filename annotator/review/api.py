"""REST API of the review page, under ``/api/review/``.

Thin views: each checks access (objects of datasets the user is not a member of answer
404), reads its input and calls one service. Writes to boxes carry the version the
reader saw (a stale one answers 409 with the box's current state) and may carry an
``Idempotency-Key`` header (a UUID): a retried write is answered from its stored receipt.
"""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpResponse
from rest_framework import status
from rest_framework.decorators import api_view
from rest_framework.exceptions import NotFound, ParseError
from rest_framework.response import Response

from annotator.audit.models import AuditAction
from annotator.audit.services import record_event
from annotator.datasets import access
from annotator.datasets.models import Annotation, Image, ImageSource, Split
from annotator.datasets.services import annotations as boxes
from annotator.learning.models import Prediction
from annotator.learning.selectors import policy_of
from annotator.review import pixel_cache, selectors
from annotator.review.services import reading as review
from annotator.review.services.stats import reader_stats
from annotator.web.idempotency import idempotent

WORKLIST_PAGE = 100


# --- access -----------------------------------------------------------------------------


def _image(request, pk, roles=access.READ) -> Image:
    return access.object_for(request.user, Image.objects.select_related("dataset"), pk, roles)


def _annotation(request, pk) -> Annotation:
    return access.object_for(
        request.user, Annotation.objects.filter(is_deleted=False).select_related("image__dataset"), pk,
        access.WRITE, via="image__dataset",
    )


# --- payloads ---------------------------------------------------------------------------


def model_summary(version) -> dict:
    """Which model read the image and what it learnt from, so a reader can judge its
    proposals (a model trained on synthetic phantoms says so by its dataset's name)."""
    run = version.training_run
    return {
        "name": version.name,
        "init": version.config.get("init"),
        "architecture": version.config.get("architecture"),
        "trained_on": {"dataset": run.dataset.name, "images": run.snapshot_images, "boxes": run.snapshot_boxes}
        if run is not None else None,
    }


def image_view(image: Image) -> dict:
    """What the page shows of one image, read-only: metadata, classes, shown boxes, its
    place in the ranking, its fracture probability, and the copies it was imported
    from with each copy's own boxes, and why they disagree (``conflict``, empty once
    settled): five queries whatever the number of boxes, six for an imported image (its
    copies)."""
    ranking = selectors.ranking_of(image)
    threshold = policy_of(image.dataset).display_threshold
    shown = image.annotations.filter(is_deleted=False).select_related("category", "author").order_by("id")
    prediction = (
        Prediction.objects.filter(image=image).select_related("model_version__training_run__dataset")
        .order_by("-created_at").first()
    )
    return {
        "image": {
            "id": image.pk, "dataset": image.dataset_id, "file_name": image.file_name,
            "width": image.width, "height": image.height, "bit_depth": image.bit_depth,
            "photometric": image.photometric_interpretation, "window_center": image.window_center,
            "window_width": image.window_width, "status": image.status, "split": image.split,
            "skip_reason": image.skip_reason, "pixels_url": f"/api/review/images/{image.pk}/pixels/",
            "conflict": image.conflict,
        },
        "copies": [
            {"file_name": c.file_name, "split": c.split, "verdict": c.verdict, "boxes": c.boxes}
            for c in (image.copies.all() if image.source == ImageSource.COCO else ())  # only imports have copies
        ],
        "rank": {
            "strategy": ranking.strategy if ranking else None,
            "position": ranking.position if ranking else None,
            "score": ranking.score if ranking else None,
        },
        "fracture_probability": prediction.fracture_probability if prediction else None,
        "model": model_summary(prediction.model_version) if prediction else None,
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
    return _reading(image, user, review.open_image(image, user))


# --- writes ---------------------------------------------------------------------------


def _body(request) -> dict:
    """The request's JSON object (any other JSON value is a 400, never a 500)."""
    if not isinstance(request.data, dict):
        raise ParseError("the body must be a JSON object")
    return request.data


def _version(data) -> int:
    value = data.get("version")
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**31:
        raise ParseError("send the box's version as a positive integer")
    return value


def _renew(image, user) -> None:
    """Saving is activity: extend the reader's lease when they hold it."""
    review.try_lease(image, user)


# --- worklist ---------------------------------------------------------------------------


def _filter(request) -> str:
    name = _body(request).get("filter") if request.method == "POST" else request.query_params.get("filter")
    name = name or "todo"
    if name not in selectors.FILTERS:
        raise ParseError(f"unknown filter {name!r}; use one of {', '.join(selectors.FILTERS)}")
    return name


@api_view(["GET"])
def worklist(request, pk):
    """One page of the worklist (``?page=``, ``WORKLIST_PAGE`` rows), with the total, so
    every image can be reached, new uploads after the ranked ones included. A score is
    None until a model has ranked the pool (``ranking.by_model`` says whether one has)."""
    dataset = access.dataset_for(request.user, pk)
    ranking = selectors.latest_ranking(dataset)
    rows = selectors.worklist(dataset, request.user, _filter(request)).select_related("lease__user")
    page = Paginator(rows, WORKLIST_PAGE).get_page(request.query_params.get("page"))
    return Response({
        "ranking": {"strategy": ranking.strategy, "created_at": ranking.created_at,
                    "by_model": ranking.model_version_id is not None} if ranking else None,
        "count": page.paginator.count,
        "page": page.number,
        "pages": page.paginator.num_pages,
        "images": [
            {"id": i.pk, "file_name": i.file_name, "status": i.status, "rank_position": i.rank_position,
             "rank_score": i.rank_score if ranking and ranking.model_version_id else None}
            for i in page
        ],
    })


def _after(request, dataset):
    after = _body(request).get("after")
    if after in (None, ""):
        return None
    image = Image.objects.filter(dataset=dataset, pk=after).first() if str(after).isdigit() else None
    if image is None:
        raise ParseError("after must be an image of this dataset")
    return image


@api_view(["POST"])
def next_image(request, pk):
    dataset = access.dataset_for(request.user, pk, access.WRITE)
    filter_name = _filter(request)
    image = review.claim_next(dataset, request.user, filter_name, after=_after(request, dataset))
    if image is None:
        return Response({"image": None, "detail": "nothing left to read with this filter"})
    return _reading(image, request.user, review.start_reading(image, request.user), filter_name)


@api_view(["POST"])
def previous_image(request, pk):
    dataset = access.dataset_for(request.user, pk, access.WRITE)
    image = review.previous_image(dataset, request.user, _after(request, dataset))
    if image is None:
        return Response({"image": None, "detail": "no earlier image"})
    return _open(image, request.user)


# --- one image --------------------------------------------------------------------------


def _readable(request, pk) -> Image:
    image = _image(request, pk, access.WRITE)
    if image.split not in Split.sampleable() and not image.conflict:
        raise NotFound("validation and test images are not offered for reading (unless their labels disagree)")
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
    record_event(request, None, AuditAction.IMAGE_VIEWED, dataset=image.dataset, obj=image,
                 details={"via": "review pixels"})
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
    image = _image(request, pk, access.WRITE)
    review.renew_lease(image, request.user)
    return Response({"lease_seconds": review.LEASE_SECONDS})


@api_view(["POST"])
@idempotent
def create_box(request, pk):
    image = _image(request, pk, access.WRITE)
    data = _body(request)
    _renew(image, request.user)
    box = boxes.add_box(image, data.get("category"), data.get("x"), data.get("y"), data.get("w"), data.get("h"),
                        request.user)
    return Response(boxes.box_state(box), status=status.HTTP_201_CREATED)


@api_view(["PATCH", "DELETE"])
@idempotent
def change_box(request, pk):
    annotation = _annotation(request, pk)
    _renew(annotation.image, request.user)
    if request.method == "DELETE":
        version = _version(request.query_params)
        return Response(boxes.box_state(boxes.delete_box(annotation.pk, version, request.user)))
    data = _body(request)
    version = _version(data)
    changes = {k: v for k, v in data.items() if k != "version"}
    return Response(boxes.box_state(boxes.update_box(annotation.pk, version, changes, request.user)))


@api_view(["POST"])
@idempotent
def accept_box(request, pk):
    annotation = _annotation(request, pk)
    _renew(annotation.image, request.user)
    version = _version(_body(request))
    return Response(boxes.box_state(boxes.accept_proposal(annotation.pk, version, request.user)))


@api_view(["POST"])
@idempotent
def accept_all(request, pk):
    image = _image(request, pk, access.WRITE)
    threshold = _body(request).get("threshold", policy_of(image.dataset).display_threshold)
    if not isinstance(threshold, int | float) or isinstance(threshold, bool) or not 0 <= threshold <= 1:
        raise ParseError("threshold must be a number from 0 to 1")
    _renew(image, request.user)
    accepted = boxes.accept_proposals_above(image, threshold, request.user)
    return Response({"accepted": [boxes.box_state(a) for a in accepted]})


@api_view(["POST"])
@idempotent
def finish(request, pk):
    image = _image(request, pk, access.WRITE)
    data = _body(request)
    outcome, reason = data.get("outcome"), data.get("reason", "")
    if not isinstance(reason, str) or not isinstance(outcome, str):
        raise ParseError("outcome and reason must be text")
    session = review.finish_image(image, request.user, outcome, reason)
    return Response({"outcome": session.outcome, "seconds": session.seconds, "status": session.image.status})


@api_view(["GET"])
def stats(request, pk):
    return Response(reader_stats(access.dataset_for(request.user, pk)))

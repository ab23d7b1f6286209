"""Pure conversions between our rows and Label Studio's JSON."""

from __future__ import annotations

import math
from urllib.parse import urlsplit
from xml.sax.saxutils import quoteattr

from django.conf import settings
from django.core import signing
from django.urls import Resolver404, resolve, reverse

from annotator.errors import InvalidInput

FROM_NAME = "label"
TO_NAME = "image"
IMAGE_SIGNING_SALT = "annotator.labelstudio.image"


class ConversionError(InvalidInput):
    """Label Studio JSON that cannot become boxes; the message says why."""


def label_config(category_names: list[str]) -> str:
    """A RectangleLabels config over the dataset's categories (names XML-escaped)."""
    labels = "\n".join(f"    <Label value={quoteattr(name)}/>" for name in category_names)
    return (
        "<View>\n"
        f'  <Image name="{TO_NAME}" value="$image" zoom="true"/>\n'
        f'  <RectangleLabels name="{FROM_NAME}" toName="{TO_NAME}">\n'
        f"{labels}\n"
        "  </RectangleLabels>\n"
        "</View>"
    )


def box_to_region(bbox, name: str, score: float | None, width: int, height: int) -> dict:
    """One pixel box ``[x, y, w, h]`` as a rectanglelabels region in percent."""
    x, y, w, h = (float(v) for v in bbox)
    region = {
        "from_name": FROM_NAME,
        "to_name": TO_NAME,
        "type": "rectanglelabels",
        "original_width": width,
        "original_height": height,
        "image_rotation": 0,
        "value": {
            "x": 100.0 * x / width,
            "y": 100.0 * y / height,
            "width": 100.0 * w / width,
            "height": 100.0 * h / height,
            "rotation": 0,
            "rectanglelabels": [name],
        },
    }
    if score is not None:
        region["score"] = float(score)
    return region


def region_to_box(region: dict, width: int, height: int) -> tuple[str, float, float, float, float]:
    """A rectanglelabels region as ``(label, x, y, w, h)`` in our image's pixels.

    Percentages are converted with OUR stored size (Label Studio's ``original_width``
    must agree when present). Rotated boxes cannot be stored and are refused.
    """
    value = region.get("value")
    if not isinstance(value, dict):
        raise ConversionError("a region has no 'value' object")
    labels = value.get("rectanglelabels")
    if not isinstance(labels, list) or len(labels) != 1 or not isinstance(labels[0], str):
        raise ConversionError("a rectangle must carry exactly one label")
    try:
        x, y, w, h = (float(value[key]) for key in ("x", "y", "width", "height"))
        rotation = float(value.get("rotation") or 0)
    except (KeyError, TypeError, ValueError, OverflowError):
        raise ConversionError("a rectangle needs numeric x, y, width, height and rotation") from None
    if not all(math.isfinite(v) for v in (x, y, w, h, rotation)):
        raise ConversionError("a rectangle has a value that is not finite")
    if abs(rotation) > 1e-6:
        raise ConversionError("rotated rectangles cannot be stored (boxes are axis-aligned)")
    for key, ours in (("original_width", width), ("original_height", height)):
        theirs = region.get(key)
        if theirs is not None and theirs != ours:
            raise ConversionError(f"{key} {theirs} differs from the stored image's {ours}")
    return labels[0], x * width / 100.0, y * height / 100.0, w * width / 100.0, h * height / 100.0


def rectangles(result) -> list[dict]:
    """The rectanglelabels regions of an annotation result (other tools are ignored)."""
    if not isinstance(result, list):
        raise ConversionError("an annotation's 'result' must be a list")
    return [r for r in result if isinstance(r, dict) and r.get("type") == "rectanglelabels"]


def signed_image_path(image_id: int) -> str:
    """Our path serving one image to Label Studio, signed so it needs no session."""
    token = signing.dumps(image_id, key=settings.LABEL_STUDIO_SIGNING_KEY, salt=IMAGE_SIGNING_SALT, compress=True)
    return reverse("ls-image", args=[token])


def image_id_from_signature(token: str, max_age: int) -> int | None:
    try:
        value = signing.loads(token, key=settings.LABEL_STUDIO_SIGNING_KEY, salt=IMAGE_SIGNING_SALT, max_age=max_age,
                              fallback_keys=settings.LABEL_STUDIO_SIGNING_KEY_FALLBACKS)
    except signing.BadSignature:
        return None
    return value if isinstance(value, int) else None


def image_id_from_task_data(data) -> int | None:
    """Our image id for a task: ``data.image_id``, or the path of OUR image URL in
    ``data.image`` (the signed ``/ls/images/...`` or ``/api/images/<id>/file``). Any
    other URL gives None: it is never fetched."""
    if not isinstance(data, dict):
        return None
    explicit = data.get("image_id")
    if isinstance(explicit, int) and not isinstance(explicit, bool) and explicit > 0:
        return explicit
    url = data.get("image")
    if not isinstance(url, str):
        return None
    try:
        match = resolve(urlsplit(url).path)
    except Resolver404:
        return None
    if match.url_name == "ls-image":
        return image_id_from_signature(match.kwargs["token"], max_age=None)
    if match.url_name in {"api-image-file", "api-image-detail"}:
        return int(match.kwargs["pk"])
    return None

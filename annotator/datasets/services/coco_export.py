"""COCO export: every image of the chosen splits (negatives included), the current boxes.

Only human boxes (drawn, accepted or imported ground truth) that are not deleted are
exported; model proposals that nobody confirmed are not labels. ``file_name`` is the
image's path under the dataset's media folder (``datasets/<id>/``), so the export plus
that folder re-imports as the same dataset. Built from two flat queries, so 10,000
images export in well under a second of database time.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from django.utils import timezone

from annotator.datasets.models import (
    Annotation,
    AnnotationSource,
    Dataset,
    Image,
    ReviewStatus,
    Split,
)
from annotator.errors import InvalidInput

EXPORT_FORMAT_VERSION = "1.0"


class ExportError(InvalidInput):
    """An export request that cannot be served; the message says why."""


def parse_splits(value: str | Iterable[str] | None) -> list[str]:
    """``"train,val"`` or a list -> validated split names; empty/None means all splits."""
    if value is None or value == "" or value == "all":
        return list(Split.values)
    names = value.split(",") if isinstance(value, str) else list(value)
    names = [name.strip() for name in names if name.strip()]
    unknown = [name for name in names if name not in Split.values]
    if unknown:
        raise ExportError(f"unknown split {', '.join(unknown)}; use {', '.join(Split.values)} or all")
    return names


def dataset_media_prefix(dataset: Dataset) -> str:
    return f"datasets/{dataset.pk}/"


def build_coco(dataset: Dataset, splits: list[str], *, labeled_only: bool = False, new_since=None) -> dict:
    """The COCO dict of ``splits``; ``labeled_only`` keeps images a reader (or the
    imported ground truth) finished: what a training snapshot is made of. With
    ``new_since`` (a time), each image says ``"new": true`` when it changed after it (a
    label given since the weights being fine-tuned were trained), so training can weigh
    new labels against replayed ones (``EngineConfig.new_image_weight``)."""
    prefix = dataset_media_prefix(dataset)
    images_query = Image.objects.filter(dataset=dataset, split__in=splits)
    if labeled_only:
        images_query = images_query.labeled()
    images = []
    for pk, name, width, height, split, status, original_name, photometric, bits, updated_at in (
        images_query.order_by("pk")
        .values_list(
            "pk", "file", "width", "height", "split", "status", "file_name",
            "photometric_interpretation", "bit_depth", "updated_at",
        )
        .iterator(chunk_size=5000)
    ):
        images.append(
            {
                "id": pk,
                "file_name": name.removeprefix(prefix),
                "width": width,
                "height": height,
                "split": split,
                "status": status,
                "original_file_name": original_name,
                "photometric_interpretation": photometric,
                "bit_depth": bits,
                **({"new": updated_at > new_since} if new_since is not None else {}),
            }
        )
    annotations = [
        {
            "id": pk,
            "image_id": image_id,
            "category_id": category_id,
            "bbox": [x, y, w, h],
            "area": w * h,
            "iscrowd": 0,
        }
        for pk, image_id, category_id, x, y, w, h in (
            Annotation.objects.filter(
                image__dataset=dataset,
                image__split__in=splits,
                source=AnnotationSource.HUMAN,
                is_deleted=False,
                **({"image__status__in": ReviewStatus.labeled()} if labeled_only else {}),
            )
            .order_by("pk")
            .values_list("pk", "image_id", "category__coco_id", "x", "y", "w", "h")
            .iterator(chunk_size=10000)
        )
    ]
    categories = [
        {"id": coco_id, "name": name, "supercategory": supercategory}
        for coco_id, name, supercategory in dataset.categories.order_by("coco_id").values_list(
            "coco_id", "name", "supercategory"
        )
    ]
    now = timezone.now()
    return {
        "info": {
            "description": f"{dataset.name} ({', '.join(splits)})",
            "version": EXPORT_FORMAT_VERSION,
            "year": now.year,
            "date_created": now.isoformat(),
            "contributor": "fracture active-learning platform",
            "dataset": dataset.name,
            "splits": splits,
            "upload_names_anonymized": dataset.anonymize_upload_names,
            "file_names": (
                "uploads received while this setting is on are named by a digest of their pixels, "
                "not the name they came with; imported images keep their source's names"
                if dataset.anonymize_upload_names
                else "uploads keep the name they came with (which may identify a patient)"
            ),
        },
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }


def write_coco(dataset: Dataset, splits: list[str], out: Path) -> dict:
    """Write the export atomically (temp file, fsync, rename); return the COCO dict."""
    coco = build_coco(dataset, splits)
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            # dumps (one shot) uses the C encoder; dump() to a stream would not
            stream.write(json.dumps(coco, separators=(",", ":")))
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp_name, out)
    except BaseException:
        if os.path.exists(temp_name):
            os.unlink(temp_name)
        raise
    return coco

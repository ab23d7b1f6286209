"""import_coco on real FracAtlas files as shipped: EXIF orientation, truncated JPEGs,
pixel-identical copies that disagree, and copies straddling the authors' splits.

The files are the real ones, from ``../shared/data/fracatlas`` (or FRACATLAS_DIR); the
test imports a subset that holds every trap, with the COCO file cut to that subset. A
user's machine will not have the data: the tests then skip, saying where they looked.
The whole dataset is imported by the command in docs/benchmarks.md.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import pytest
from django.core.management import call_command

from annotator.datasets.models import Annotation, Image, ImageCopy, ReviewStatus, Split
from annotator.review.selectors import worklist
from tests.factories import UserFactory

FRACATLAS = Path(
    os.environ.get("FRACATLAS_DIR")
    or Path(__file__).resolve().parents[2].parent / "shared" / "data" / "fracatlas"
)
COCO_FILE = FRACATLAS / "Annotations" / "COCO JSON" / "COCO_fracture_masks.json"

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        not FRACATLAS.is_dir(), reason=f"FracAtlas is not at {FRACATLAS} (set FRACATLAS_DIR to where it is)"
    ),
]

FRACTURED = [
    "IMG0002628.jpg",  # EXIF orientation 8: the COCO file gives the rotated size
    "IMG0002588.jpg",  # EXIF orientation 3
    "IMG0002886.jpg",  # same pixels as Non_fractured/IMG0004243.jpg
    "IMG0003034.jpg",  # same pixels as Non_fractured/IMG0004314.jpg
    "IMG0000261.jpg", "IMG0002299.jpg", "IMG0002300.jpg",  # three copies, all train
    "IMG0002745.jpg", "IMG0004116.jpg",  # two copies: train and valid
]
NON_FRACTURED = ["IMG0004243.jpg", "IMG0004314.jpg", "IMG0004036.jpg", "IMG0004076.jpg"]  # the last two truncated


@pytest.fixture
def subset(tmp_path, media_root):
    """The files above in FracAtlas' layout, and the COCO file cut to them."""
    images = tmp_path / "images"
    for folder, names in (("Fractured", FRACTURED), ("Non_fractured", NON_FRACTURED)):
        (images / folder).mkdir(parents=True)
        for name in names:
            shutil.copyfile(FRACATLAS / "images" / folder / name, images / folder / name)
    coco = json.loads(COCO_FILE.read_text())
    coco["images"] = [image for image in coco["images"] if image["file_name"] in FRACTURED]
    ids = {image["id"] for image in coco["images"]}
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in ids]
    annotations = tmp_path / "coco.json"
    annotations.write_text(json.dumps(coco))
    return annotations, images, coco


def run(subset, tmp_path, *extra):
    annotations, images, _ = subset
    report = tmp_path / "report.json"
    call_command("import_coco", str(annotations), str(images), "--dataset", "fracatlas", "--unlisted-as-negatives",
                 "--splits", str(FRACATLAS / "split"), "--report", str(report), *extra, stdout=io.StringIO())
    return json.loads(report.read_text())


def test_the_subset_imports_as_shipped_and_every_file_and_box_is_accounted_for(subset, tmp_path):
    _, _, coco = subset
    report = run(subset, tmp_path)

    files, boxes = report["files"], report["boxes"]
    assert files == {"total": 13, "stored": 6, "merged": 5, "present": 0, "skipped": 2}
    assert boxes["total"] == len(coco["annotations"]) == boxes["stored"] + boxes["merged"] + boxes["skipped"]
    assert boxes["skipped"] == 0 and Annotation.objects.count() == boxes["stored"]
    assert sorted(entry["file"] for entry in report["skipped_files"]) == [
        "Non_fractured/IMG0004036.jpg", "Non_fractured/IMG0004076.jpg"
    ]
    assert all("truncated" in entry["reason"] for entry in report["skipped_files"])

    # EXIF orientation 8: stored upright, at the size the boxes were drawn on, boxes as given
    turned = Image.objects.get(file_name="IMG0002628.jpg")
    (entry,) = [image for image in coco["images"] if image["file_name"] == "IMG0002628.jpg"]
    assert (turned.width, turned.height, turned.exif_orientation) == (entry["width"], entry["height"], 8)
    given = sorted(tuple(a["bbox"]) for a in coco["annotations"] if a["image_id"] == entry["id"])
    assert sorted(turned.annotations.values_list("x", "y", "w", "h")) == given
    assert {e["file"]: e["orientation"] for e in report["exif_orientation"]} == {
        "Fractured/IMG0002628.jpg": 8, "Fractured/IMG0002588.jpg": 3
    }

    # the two fractured-vs-negative pairs are conflicts, in train: the worklist filter lists them
    in_filter = {image.file_name for image in worklist(turned.dataset, UserFactory(), "conflicts")}
    for fractured, negative in (("IMG0002886.jpg", "IMG0004243.jpg"), ("IMG0003034.jpg", "IMG0004314.jpg")):
        image = Image.objects.get(file_name=fractured)
        assert image.status == ReviewStatus.CONFLICT and image.split == Split.TRAIN
        assert f"but Non_fractured/{negative} is negative" in image.conflict
        assert set(image.copies.values_list("verdict", flat=True)) == {"fractured", "negative"}
        assert fractured in in_filter

    # copies in train and valid: a leak, kept in val
    straddling = Image.objects.get(file_name="IMG0002745.jpg")
    assert straddling.split == Split.VAL
    assert {"image_id": straddling.pk, "splits": {"IMG0002745.jpg": "train", "IMG0004116.jpg": "val"},
            "kept_in": "val"} in report["leaks"]
    assert len(report["leaks"]) == 1

    # three copies of one picture: one image remembering all three names
    assert set(ImageCopy.objects.filter(image__file_name="IMG0000261.jpg").values_list("file_name", flat=True)) == {
        "IMG0000261.jpg", "IMG0002299.jpg", "IMG0002300.jpg"
    }
    assert len(report["duplicate_groups"]) == 4
    summary = report["agreement_summary"]
    assert summary["matched_boxes"] == sum(len(entry["ious"]) for entry in report["agreement"]) > 0
    assert 0.5 <= summary["iou_min"] <= summary["iou_max"] <= 1


def test_store_damaged_keeps_the_truncated_files(subset, tmp_path):
    report = run(subset, tmp_path, "--store-damaged")
    assert report["files"]["skipped"] == 0 and len(report["damaged"]) == 2
    damaged = Image.objects.exclude(damage="")
    assert sorted(damaged.values_list("file_name", flat=True)) == [
        "Non_fractured/IMG0004036.jpg", "Non_fractured/IMG0004076.jpg"
    ]
    assert all(image.status == ReviewStatus.NEGATIVE and image.file.name.endswith(".png") for image in damaged)

"""import_coco on data as it ships: EXIF orientation, truncated JPEGs, pixel-identical
copies with their own labels, split lists, and the report accounting for everything.

Every file here is made by the test (see test_fracatlas_import.py for the real data).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from PIL import Image as PILImage

from annotator.datasets.models import (
    Annotation,
    CopyVerdict,
    Dataset,
    Image,
    ImageCopy,
    ImportRecord,
    ReviewStatus,
    Role,
    Split,
)
from annotator.datasets.services.membership import freeze_validation_split
from tests.conftest import stored_files
from tests.factories import MembershipFactory
from tests.imaging import samples

pytestmark = pytest.mark.django_db

CATEGORY = {"id": 0, "name": "fractured", "supercategory": "fractured"}


class Source:
    """A COCO file and its image folder, written by the test."""

    def __init__(self, root: Path):
        self.root = root
        self.images_dir = root / "images"
        self.images_dir.mkdir(parents=True)
        self.coco = {"images": [], "annotations": [], "categories": [CATEGORY]}

    def add(self, name: str, data: bytes, boxes=(), size=None, listed=True) -> None:
        path = self.images_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        if not listed:
            return
        width, height = size or PILImage.open(io.BytesIO(data)).size
        image_id = len(self.coco["images"])
        self.coco["images"].append({"id": image_id, "file_name": Path(name).name, "width": width, "height": height})
        for bbox in boxes:
            self.coco["annotations"].append(
                {"id": len(self.coco["annotations"]), "image_id": image_id, "category_id": 0, "bbox": list(bbox),
                 "iscrowd": 0}
            )

    def run(self, *extra: str, dataset: str = "shipped") -> dict:
        annotations = self.root / "coco.json"
        annotations.write_text(json.dumps(self.coco))
        report = self.root / "report.json"
        out = io.StringIO()
        call_command("import_coco", str(annotations), str(self.images_dir), "--dataset", dataset,
                     "--report", str(report), *extra, stdout=out)
        self.output = out.getvalue()
        return json.loads(report.read_text())


@pytest.fixture
def source(tmp_path, media_root):
    return Source(tmp_path / "source")


def png(seed: int, size=(64, 48)) -> bytes:
    noise = np.random.default_rng(seed).integers(0, 255, size=size[::-1], dtype=np.uint8)
    return samples.image_bytes(PILImage.fromarray(noise), "PNG")


def assert_accounted(report: dict) -> None:
    files, boxes = report["files"], report["boxes"]
    assert files["total"] == files["stored"] + files["merged"] + files["present"] + files["skipped"]
    assert boxes["total"] == boxes["stored"] + boxes["merged"] + boxes["skipped"]
    assert report["balanced"] is True


def test_exif_rotated_jpeg_keeps_its_box_in_the_frame_the_annotators_saw(source):
    # stored 64x48 with orientation 6 (turn 90° clockwise): every viewer shows it 48x64
    data = samples.jpeg_bytes(size=(64, 48), orientation=6)
    source.add("Fractured/turned.jpg", data, boxes=[(2, 40, 10, 20)], size=(48, 64))
    report = source.run()

    image = Image.objects.get()
    assert (image.width, image.height, image.exif_orientation) == (48, 64, 6)
    box = Annotation.objects.get()
    assert (box.x, box.y, box.w, box.h) == (2, 40, 10, 20)
    stored_as_shot = np.asarray(PILImage.open(io.BytesIO(data)).convert("L"))
    with image.file.open("rb") as stored:  # stored upright, as a PNG
        assert image.file.name.endswith("turned.png")
        np.testing.assert_array_equal(np.asarray(PILImage.open(stored)), np.rot90(stored_as_shot, -1))
    assert report["exif_orientation"] == [{"file": "Fractured/turned.jpg", "orientation": 6}]
    assert_accounted(report)


def test_a_truncated_jpeg_is_skipped_with_its_reason_and_the_rest_is_stored(source, media_root):
    source.add("good.png", png(1), boxes=[(5, 5, 10, 10)])
    source.add("cut.jpg", samples.truncated(samples.jpeg_bytes(size=(256, 256)), keep=0.8), boxes=[(1, 1, 5, 5)],
               size=(256, 256))
    report = source.run()

    assert list(Image.objects.values_list("file_name", flat=True)) == ["good.png"]
    assert report["files"] == {"total": 2, "stored": 1, "merged": 0, "present": 0, "skipped": 1}
    (skipped,) = report["skipped_files"]
    assert skipped["file"] == "cut.jpg" and "cut.jpg" in skipped["reason"] and "truncated" in skipped["reason"]
    assert report["boxes"]["skipped"] == 1 and report["skipped_boxes"] == {"its file was skipped: cut.jpg": 1}
    assert "skipped cut.jpg:" in source.output
    assert_accounted(report)


def test_strict_refuses_the_whole_import_and_leaves_nothing(source, media_root):
    source.add("good.png", png(1), boxes=[(5, 5, 10, 10)])
    source.add("cut.jpg", samples.truncated(samples.jpeg_bytes(size=(256, 256)), keep=0.8), size=(256, 256))
    with pytest.raises(CommandError, match=r"cut\.jpg: .*truncated.* \(--strict: nothing was imported\)"):
        source.run("--strict")
    assert not Image.objects.exists() and not Dataset.objects.exists() and not ImportRecord.objects.exists()
    assert not stored_files(media_root)


def test_store_damaged_keeps_a_truncated_jpeg_marked_damaged(source):
    source.add("cut.jpg", samples.truncated(samples.jpeg_bytes(size=(256, 256)), keep=0.8), size=(256, 256))
    report = source.run("--store-damaged")
    image = Image.objects.get()
    assert "cut.jpg is a damaged JPEG" in image.damage
    assert image.file.name.endswith("cut.png")
    assert report["damaged"] == [{"file": "cut.jpg", "reason": image.damage}]
    assert_accounted(report)


def test_a_failure_after_files_were_written_leaves_no_partial_state(source, media_root, monkeypatch):
    from annotator.datasets.services import coco_import

    source.add("a.png", png(1), boxes=[(5, 5, 10, 10)])
    source.add("b.png", png(2))

    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(coco_import, "create_boxes", broken)
    with pytest.raises(RuntimeError, match="database went away"):
        source.run()
    assert not Image.objects.exists() and not ImportRecord.objects.exists() and not stored_files(media_root)


def test_same_pixels_under_two_names_with_agreeing_boxes_become_one_image_with_two_copies(source):
    data = png(3)
    source.add("Fractured/IMG1.png", data, boxes=[(10, 10, 10, 10)])
    source.add("Fractured/IMG2.png", data, boxes=[(11, 10, 10, 10)])  # IoU 0.818
    report = source.run()

    image = Image.objects.get()
    assert image.status == ReviewStatus.LABELED and image.conflict == ""
    box = Annotation.objects.get()
    assert (box.x, box.y, box.w, box.h) == (10, 10, 10, 10)
    copies = {c.file_name: c for c in image.copies.all()}
    assert set(copies) == {"IMG1.png", "IMG2.png"}
    assert copies["IMG2.png"].boxes == [{"bbox": [11, 10, 10, 10], "category": 0, "annotation": box.pk,
                                         "iou": round(90 / 110, 4)}]
    assert copies["IMG1.png"].boxes[0]["annotation"] == box.pk
    assert report["files"] == {"total": 2, "stored": 1, "merged": 1, "present": 0, "skipped": 0}
    assert report["boxes"] == {"total": 2, "stored": 1, "merged": 1, "skipped": 0, "conflicting": 0}
    assert report["agreement"] == [{"image_id": image.pk, "box": [10, 10, 10, 10],
                                    "copies": ["IMG1.png", "IMG2.png"], "ious": [round(90 / 110, 4)]}]
    assert report["agreement_summary"]["matched_boxes"] == 1
    assert len(report["duplicate_groups"]) == 1 and report["conflicts"] == []
    assert_accounted(report)


def test_same_pixels_with_different_boxes_are_a_conflict_keeping_the_union(source):
    data = png(4)
    source.add("IMG1.png", data, boxes=[(0, 0, 10, 10), (30, 30, 8, 8)])
    source.add("IMG2.png", data, boxes=[(5, 0, 10, 10), (30, 31, 8, 8)])  # first pair IoU 0.33: no match
    report = source.run()

    image = Image.objects.get()
    assert image.status == ReviewStatus.CONFLICT
    assert "box [0, 0, 10, 10] (class 0) of IMG1.png has no match (IoU >= 0.5) in IMG2.png" in image.conflict
    assert sorted(Annotation.objects.values_list("x", "y")) == [(0, 0), (5, 0), (30, 30)]
    assert report["boxes"] == {"total": 4, "stored": 3, "merged": 1, "skipped": 0, "conflicting": 2}
    assert report["conflicts"] == [{"image_id": image.pk, "split": "train", "files": ["IMG1.png", "IMG2.png"],
                                    "reason": image.conflict}]
    assert_accounted(report)


def test_fractured_and_negative_copies_are_a_conflict(source):
    data = png(5)
    source.add("Fractured/IMG1.png", data, boxes=[(0, 0, 10, 10)])
    source.add("Non_fractured/IMG9.png", data, listed=False)
    report = source.run("--unlisted-as-negatives")

    image = Image.objects.get()
    assert image.status == ReviewStatus.CONFLICT
    assert image.conflict == "IMG1.png has 1 box but Non_fractured/IMG9.png is negative"
    verdicts = dict(ImageCopy.objects.values_list("file_name", "verdict"))
    assert verdicts == {"IMG1.png": CopyVerdict.FRACTURED, "Non_fractured/IMG9.png": CopyVerdict.NEGATIVE}
    assert Annotation.objects.count() == 1
    assert report["boxes"]["conflicting"] == 1
    assert_accounted(report)


def test_split_lists_place_images_and_a_straddling_group_is_kept_in_the_evaluation_split(source, tmp_path):
    twin = png(6)
    source.add("IMG1.png", twin, boxes=[(0, 0, 10, 10)])
    source.add("IMG2.png", twin, boxes=[(0, 0, 10, 10)])
    source.add("IMG3.png", png(7), boxes=[(0, 0, 10, 10)])
    source.add("IMG4.png", png(8), boxes=[(0, 0, 10, 10)])
    lists = tmp_path / "split"
    lists.mkdir()
    (lists / "train.csv").write_text("image_id\nIMG1.png\n")
    (lists / "valid.csv").write_text("image_id\nIMG2.png\nIMG3.png\nIMG9.png\n")
    report = source.run("--splits", str(lists), "--split", "pool")

    splits = dict(Image.objects.values_list("file_name", "split"))
    assert splits == {"IMG1.png": Split.VAL, "IMG3.png": Split.VAL, "IMG4.png": Split.POOL}
    image = Image.objects.get(file_name="IMG1.png")
    assert report["leaks"] == [{"image_id": image.pk, "splits": {"IMG1.png": "train", "IMG2.png": "val"},
                                "kept_in": "val"}]
    assert dict(image.copies.values_list("file_name", "split")) == {"IMG1.png": "train", "IMG2.png": "val"}
    assert report["listed_not_found"] == ["IMG9.png"]
    assert "split leaks: 1" in source.output
    assert_accounted(report)


def test_an_image_listed_into_a_frozen_validation_split_is_skipped_with_the_reason(source, media_root):
    dataset = Dataset.objects.create(name="shipped")
    freeze_validation_split(dataset)
    source.add("IMG1.png", png(9))
    lists = source.root / "split"
    lists.mkdir()
    (lists / "valid.csv").write_text("IMG1.png\n")
    report = source.run("--splits", str(lists))
    assert not Image.objects.exists() and not stored_files(media_root)
    assert "frozen" in report["skipped_files"][0]["reason"]


def test_reimport_reports_every_file_as_present(source):
    source.add("IMG1.png", png(10), boxes=[(0, 0, 10, 10)])
    source.run()
    report = source.run()
    assert report["files"] == {"total": 1, "stored": 0, "merged": 0, "present": 1, "skipped": 0}
    assert report["skipped_boxes"] == {"the image is already in the dataset": 1}
    assert Annotation.objects.count() == 1 and ImportRecord.objects.count() == 2
    assert_accounted(report)


def test_the_report_is_recorded_and_shown_on_the_dataset_page(source, client):
    data = png(11)
    source.add("IMG1.png", data, boxes=[(0, 0, 10, 10)])
    source.add("IMG2.png", data)
    source.add("cut.jpg", samples.truncated(samples.jpeg_bytes(size=(256, 256)), keep=0.8), size=(256, 256))
    report = source.run()

    record = ImportRecord.objects.get()
    assert record.report == report and record.finished_at >= record.started_at
    assert record.options["strict"] is False
    member = MembershipFactory(dataset=record.dataset, role=Role.VIEWER)
    client.force_login(member.user)
    page = client.get(reverse("dataset-detail", args=[record.dataset.pk])).content.decode()
    assert "1 stored, 1 merged as copies, 0 already present" in page
    assert "cut.jpg" in page and "IMG1.png has 1 box but IMG2.png is negative" in page

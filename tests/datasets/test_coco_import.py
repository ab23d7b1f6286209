"""manage.py import_coco: phantoms, FracAtlas layout, idempotence and refused input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from annotator.models import (
    Annotation,
    AnnotationRevision,
    Dataset,
    Image,
    ImportRecord,
    ReviewStatus,
    Split,
)
from tests.conftest import stored_files
from tests.imaging.samples import png_bytes, truncated

pytestmark = pytest.mark.django_db


def run_import(annotations: Path, images_dir: Path, *extra: str, dataset: str = "phantoms"):
    call_command("import_coco", str(annotations), str(images_dir), "--dataset", dataset, *extra)


def copy_dataset(phantom_coco: Path, tmp_path: Path) -> tuple[Path, dict]:
    """A writable copy of the phantom dataset and its parsed COCO."""
    folder = tmp_path / "copy"
    shutil.copytree(phantom_coco.parent, folder)
    return folder / phantom_coco.name, json.loads(phantom_coco.read_text())


def write_coco(folder: Path, coco: dict) -> Path:
    path = folder / "edited.json"
    path.write_text(json.dumps(coco))
    return path


def test_import_stores_images_boxes_negatives_and_revisions(phantom_coco, media_root):
    coco = json.loads(phantom_coco.read_text())
    run_import(phantom_coco, phantom_coco.parent / "images")

    dataset = Dataset.objects.get(name="phantoms")
    assert dataset.images.count() == len(coco["images"])
    annotated = {a["image_id"] for a in coco["annotations"]}
    negatives = dataset.images.filter(status=ReviewStatus.NEGATIVE).count()
    assert negatives == len(coco["images"]) - len(annotated) > 0
    assert dataset.images.filter(status=ReviewStatus.LABELED).count() == len(annotated)
    assert set(dataset.images.values_list("split", flat=True)) == {Split.TRAIN}
    assert Annotation.objects.filter(image__dataset=dataset).count() == len(coco["annotations"])
    assert AnnotationRevision.objects.count() == len(coco["annotations"])
    assert sorted(dataset.categories.values_list("coco_id", "name")) == sorted(
        (c["id"], c["name"]) for c in coco["categories"]
    )
    # boxes keep their pixel coordinates exactly
    by_name = {i["id"]: i["file_name"] for i in coco["images"]}
    expected = sorted((by_name[a["image_id"]], *a["bbox"]) for a in coco["annotations"])
    assert sorted(Annotation.objects.values_list("image__file_name", "x", "y", "w", "h")) == expected
    image = dataset.images.first()
    assert image.bit_depth == 16 and (image.width, image.height) == (128, 128)
    assert len(stored_files(media_root)) == len(coco["images"])


def test_reimport_adds_nothing_twice(phantom_coco, media_root):
    run_import(phantom_coco, phantom_coco.parent / "images")
    counts = (Image.objects.count(), Annotation.objects.count(), AnnotationRevision.objects.count())
    files = stored_files(media_root)
    run_import(phantom_coco, phantom_coco.parent / "images")
    assert (Image.objects.count(), Annotation.objects.count(), AnnotationRevision.objects.count()) == counts
    assert stored_files(media_root) == files


def test_images_only_import_makes_an_unlabeled_pool(phantom_coco, media_root):
    run_import(phantom_coco, phantom_coco.parent / "images", "--split", "pool", "--images-only")
    assert set(Image.objects.values_list("status", "split")) == {(ReviewStatus.UNLABELED, Split.POOL)}
    assert not Annotation.objects.exists()


def test_fracatlas_layout_bare_names_in_subfolders_and_unlisted_negatives(tmp_path, media_root):
    """FracAtlas: file_name is a bare name, images sit in Fractured/ and Non_fractured/,
    and the COCO file lists only the fractured ones."""
    root = tmp_path / "FracAtlas" / "images"
    (root / "Fractured").mkdir(parents=True)
    (root / "Non_fractured").mkdir()
    (root / "Fractured" / "IMG0000019.jpg").write_bytes(png_bytes(size=(64, 48)))
    (root / "Non_fractured" / "IMG0000001.jpg").write_bytes(png_bytes(bit_depth=16, size=(64, 48)))
    coco = {
        "images": [{"id": 19, "file_name": "IMG0000019.jpg", "width": 64, "height": 48}],
        "annotations": [
            {"id": 1, "image_id": 19, "category_id": 0, "bbox": [10.5, 5, 20, 12.25], "iscrowd": 0,
             "segmentation": [[10.5, 5, 30.5, 5, 30.5, 17.25]], "area": 245},
        ],
        "categories": [{"id": 0, "name": "fractured", "supercategory": "fractured"}],
    }
    annotations = write_coco(tmp_path, coco)
    run_import(annotations, root, "--unlisted-as-negatives", dataset="FracAtlas")

    images = {i.file_name: i for i in Image.objects.all()}
    assert set(images) == {"IMG0000019.jpg", "Non_fractured/IMG0000001.jpg"}
    assert images["IMG0000019.jpg"].status == ReviewStatus.LABELED
    assert images["Non_fractured/IMG0000001.jpg"].status == ReviewStatus.NEGATIVE
    box = Annotation.objects.get()
    assert (box.x, box.y, box.w, box.h, box.category.coco_id) == (10.5, 5, 20, 12.25, 0)


@pytest.mark.parametrize(
    ("file_name", "reason"),
    [
        ("../outside.png", "path traversal"),
        ("sub/../../outside.png", "path traversal"),
        ("/etc/passwd", "absolute paths are refused"),
        ("C:\\images\\x.png", "Windows-style paths"),
    ],
)
def test_file_names_escaping_the_folder_are_refused(phantom_coco, tmp_path, media_root, file_name, reason):
    _, coco = copy_dataset(phantom_coco, tmp_path)
    coco["images"][3]["file_name"] = file_name
    with pytest.raises(CommandError, match=reason):
        run_import(write_coco(tmp_path / "copy", coco), tmp_path / "copy" / "images")
    assert not Image.objects.exists() and not stored_files(media_root)


def test_symlink_escaping_the_folder_is_refused(phantom_coco, tmp_path, media_root):
    _, coco = copy_dataset(phantom_coco, tmp_path)
    secret = tmp_path / "secret.png"
    secret.write_bytes(png_bytes())
    (tmp_path / "copy" / "images" / "link.png").symlink_to(secret)
    coco["images"][0]["file_name"] = "link.png"
    with pytest.raises(CommandError, match="symbolic link that leaves"):
        run_import(write_coco(tmp_path / "copy", coco), tmp_path / "copy" / "images")
    assert not Image.objects.exists()


def test_malformed_json_names_the_file(tmp_path, media_root):
    path = tmp_path / "broken.json"
    path.write_text('{"images": [')
    with pytest.raises(CommandError, match=r"broken\.json: is not valid JSON"):
        run_import(path, tmp_path)
    assert not Dataset.objects.exists()


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda c: c["annotations"][0].update(bbox=[120, 120, 30, 30]), "outside the 128x128 image"),
        (lambda c: c["annotations"][0].update(bbox=[10, 10, -5, 8]), "not positive"),
        (lambda c: c["annotations"][0].update(bbox=[10, 10, 0, 8]), "not positive"),
        (lambda c: c["annotations"][0].update(image_id=999999), "unknown image id 999999"),
        (lambda c: c["annotations"][0].update(category_id=77), "unknown category id 77"),
        (lambda c: c["annotations"][0].update(bbox=[1, 2, 3]), "bbox must be four finite numbers"),
        (lambda c: c["images"][1].pop("width"), "positive integer width and height"),
        (lambda c: c["images"].append(dict(c["images"][0])), "repeats image id"),
        (lambda c: c["images"].append({**c["images"][0], "id": 999}), "repeats file_name"),
        (lambda c: c.update(categories="nope"), "'categories' must be a list"),
    ],
)
def test_bad_coco_content_is_refused_and_nothing_is_stored(phantom_coco, tmp_path, media_root, edit, reason):
    _, coco = copy_dataset(phantom_coco, tmp_path)
    edit(coco)
    with pytest.raises(CommandError, match=reason):
        run_import(write_coco(tmp_path / "copy", coco), tmp_path / "copy" / "images")
    assert not Image.objects.exists() and not Annotation.objects.exists()
    assert not stored_files(media_root)


def test_a_corrupt_image_is_skipped_by_default_and_strict_rolls_back_the_whole_import(
    phantom_coco, tmp_path, media_root
):
    annotations, coco = copy_dataset(phantom_coco, tmp_path)
    run_import(phantom_coco, phantom_coco.parent / "images", dataset="existing")  # must survive untouched
    before = (Image.objects.count(), Annotation.objects.count(), stored_files(media_root))

    last = tmp_path / "copy" / "images" / coco["images"][-1]["file_name"]
    last.write_bytes(truncated(last.read_bytes()))
    with pytest.raises(CommandError, match=f"{last.name}: .*--strict: nothing was imported"):
        run_import(annotations, tmp_path / "copy" / "images", "--strict", dataset="new one")
    assert (Image.objects.count(), Annotation.objects.count(), stored_files(media_root)) == before

    run_import(annotations, tmp_path / "copy" / "images", dataset="new one")
    added = Dataset.objects.get(name="new one").images
    assert added.count() == len(coco["images"]) - 1
    assert not added.filter(file_name=coco["images"][-1]["file_name"]).exists()
    report = ImportRecord.objects.get(dataset__name="new one").report
    assert [entry["file"] for entry in report["skipped_files"]] == [coco["images"][-1]["file_name"]]


def test_image_size_disagreeing_with_the_coco_file_is_skipped_or_refused_when_strict(phantom_coco, tmp_path, media_root):
    _, coco = copy_dataset(phantom_coco, tmp_path)
    coco["images"][0]["width"] = 200
    annotations = write_coco(tmp_path / "copy", coco)
    with pytest.raises(CommandError, match="is 128x128 pixels .* but edited.json says 200x128"):
        run_import(annotations, tmp_path / "copy" / "images", "--strict")
    assert not Image.objects.exists()
    run_import(annotations, tmp_path / "copy" / "images")
    assert Image.objects.count() == len(coco["images"]) - 1
    assert not Image.objects.filter(file_name=coco["images"][0]["file_name"]).exists()


def test_category_names_with_html_are_stored_as_given(phantom_coco, tmp_path, media_root):
    _, coco = copy_dataset(phantom_coco, tmp_path)
    coco["categories"][0]["name"] = '<script>alert("x")</script>'
    run_import(write_coco(tmp_path / "copy", coco), tmp_path / "copy" / "images")
    assert Dataset.objects.get().categories.filter(name='<script>alert("x")</script>').exists()

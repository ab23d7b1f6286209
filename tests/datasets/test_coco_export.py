"""COCO export: every image of the chosen splits, current boxes only, a pycocotools round trip."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from pycocotools.coco import COCO

from annotator.datasets.services.annotations import NewBox, create_boxes
from annotator.datasets.services.coco_export import dataset_media_prefix
from annotator.models import Annotation, AnnotationSource, Dataset, Image, Split
from tests.factories import CategoryFactory, ImageFactory, MembershipFactory

pytestmark = pytest.mark.django_db


def export(tmp_path, dataset_name: str, split: str = "all"):
    out = tmp_path / f"export-{split}.json"
    call_command("export_coco", "--dataset", dataset_name, "--split", split, "--out", str(out))
    return out


def content(coco: COCO) -> tuple:
    """What must survive a round trip: images (name, size), boxes and categories."""
    names = {i["id"]: i["file_name"] for i in coco.dataset["images"]}
    categories = {c["id"]: c["name"] for c in coco.dataset["categories"]}
    return (
        sorted((names[i], coco.imgs[i]["width"], coco.imgs[i]["height"]) for i in coco.imgs),
        sorted((names[a["image_id"]], categories[a["category_id"]], *a["bbox"]) for a in coco.dataset["annotations"]),
        sorted(categories.items()),
    )


def test_import_then_export_round_trips_through_pycocotools(phantom_coco, tmp_path, media_root):
    call_command("import_coco", str(phantom_coco), str(phantom_coco.parent / "images"), "--dataset", "a")
    exported = COCO(str(export(tmp_path, "a")))
    original = COCO(str(phantom_coco))
    assert content(exported) == content(original)
    assert all(a["iscrowd"] == 0 and a["area"] == pytest.approx(a["bbox"][2] * a["bbox"][3])
               for a in exported.dataset["annotations"])
    assert exported.dataset["info"]["dataset"] == "a"

    # and the export re-imports, from the dataset's media folder, as the same dataset
    folder = media_root / dataset_media_prefix(Dataset.objects.get(name="a"))
    call_command("import_coco", str(tmp_path / "export-all.json"), str(folder), "--dataset", "b")
    assert content(COCO(str(export(tmp_path, "b")))) == content(original)


def test_negatives_included_and_only_current_human_boxes(tmp_path, media_root):
    category = CategoryFactory(name="transverse", coco_id=3)
    dataset = category.dataset
    labeled, negative = ImageFactory(dataset=dataset), ImageFactory(dataset=dataset)
    kept, deleted, proposal = create_boxes(
        [
            NewBox(labeled, category, 1, 2, 10, 12),
            NewBox(labeled, category, 20, 5, 8, 8),
            NewBox(labeled, category, 30, 30, 5, 5, source=AnnotationSource.MODEL, score=0.4, serving_version="v1"),
        ]
    )
    Annotation.objects.filter(pk=deleted.pk).update(is_deleted=True)

    coco = json.loads(export(tmp_path, dataset.name).read_text())
    assert {i["id"] for i in coco["images"]} == {labeled.pk, negative.pk}
    assert [(a["id"], a["category_id"], a["bbox"]) for a in coco["annotations"]] == [(kept.pk, 3, [1, 2, 10, 12])]
    assert coco["categories"] == [{"id": 3, "name": "transverse", "supercategory": ""}]
    assert set(coco) == {"info", "licenses", "images", "annotations", "categories"}


def test_split_selection(tmp_path, media_root):
    category = CategoryFactory()
    train = ImageFactory(dataset=category.dataset, split=Split.TRAIN)
    val = ImageFactory(dataset=category.dataset, split=Split.VAL)
    ImageFactory(dataset=category.dataset, split=Split.POOL)
    create_boxes([NewBox(train, category, 0, 0, 5, 5), NewBox(val, category, 1, 1, 5, 5)])
    coco = json.loads(export(tmp_path, category.dataset.name, "val").read_text())
    assert [i["id"] for i in coco["images"]] == [val.pk]
    assert [a["image_id"] for a in coco["annotations"]] == [val.pk]
    both = json.loads(export(tmp_path, category.dataset.name, "train,val").read_text())
    assert {i["id"] for i in both["images"]} == {train.pk, val.pk}


def test_export_errors_name_the_problem(tmp_path, media_root):
    with pytest.raises(CommandError, match="no dataset named 'missing'"):
        export(tmp_path, "missing")
    dataset = CategoryFactory().dataset
    with pytest.raises(CommandError, match="unknown split holdout"):
        export(tmp_path, dataset.name, "holdout")


def test_download_from_api_and_page(client, tmp_path, media_root):
    member = MembershipFactory()
    image = ImageFactory(dataset=member.dataset, split=Split.TRAIN)
    client.force_login(member.user)
    for url in (
        reverse("api-dataset-export", args=[member.dataset.pk]) + "?split=train",
        reverse("dataset-export", args=[member.dataset.pk]) + "?split=train",
    ):
        response = client.get(url)
        assert response.status_code == 200
        assert "attachment" in response["Content-Disposition"]
        assert [i["id"] for i in response.json()["images"]] == [image.pk]
    bad = client.get(reverse("api-dataset-export", args=[member.dataset.pk]) + "?split=nope")
    assert bad.status_code == 400 and "unknown split nope" in bad.json()["detail"]


def test_export_of_a_dataset_you_are_not_in_is_404(client, media_root):
    member = MembershipFactory()
    other = ImageFactory().dataset
    client.force_login(member.user)
    assert client.get(reverse("dataset-export", args=[other.pk])).status_code == 404
    assert Image.objects.count() == 1


def test_a_training_snapshot_marks_the_labels_given_since_the_parent_was_trained(media_root):
    """Replay weighting (``new_image_weight``) needs the images labeled since the weights
    being fine-tuned were made; the snapshot says which ("new")."""
    from django.utils import timezone

    from annotator.datasets.services.coco_export import build_coco
    from annotator.models import ReviewStatus
    from tests.factories import ImageFactory

    old = ImageFactory(status=ReviewStatus.NEGATIVE)
    parent_made = timezone.now()
    new = ImageFactory(dataset=old.dataset, status=ReviewStatus.NEGATIVE)
    coco = build_coco(old.dataset, ["pool"], labeled_only=True, new_since=parent_made)
    assert {entry["id"]: entry["new"] for entry in coco["images"]} == {old.pk: False, new.pk: True}
    assert "new" not in build_coco(old.dataset, ["pool"], labeled_only=True)["images"][0]

"""Label conflicts from pixel-identical copies: the worklist filter, each copy's boxes on
the review page, and settling one by finishing the image (recorded like any edit)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image as PILImage
from rest_framework.test import APIClient

from annotator.audit.models import AuditAction, AuditEvent
from annotator.datasets.models import AnnotationRevision, Image, ReviewStatus, Role
from annotator.datasets.services.coco_import import import_coco
from annotator.review import selectors
from annotator.review.models import ReadingSession
from tests.factories import MembershipFactory, UserFactory
from tests.imaging import samples

pytestmark = pytest.mark.django_db


def png(seed: int) -> bytes:
    noise = np.random.default_rng(seed).integers(0, 255, size=(48, 64), dtype=np.uint8)
    return samples.image_bytes(PILImage.fromarray(noise), "PNG")


@pytest.fixture
def imported(tmp_path, media_root):
    """A fractured copy and a negative copy of one picture, two boxed copies of another
    that disagree, and an ordinary image."""
    images = tmp_path / "images"
    (images / "Fractured").mkdir(parents=True)
    (images / "Non_fractured").mkdir()
    twin, pair, single = png(1), png(2), png(3)
    (images / "Fractured" / "IMG1.png").write_bytes(twin)
    (images / "Non_fractured" / "IMG9.png").write_bytes(twin)
    (images / "Fractured" / "IMG2.png").write_bytes(pair)
    (images / "Fractured" / "IMG3.png").write_bytes(pair)
    (images / "Fractured" / "IMG4.png").write_bytes(single)
    coco = {
        "images": [{"id": i, "file_name": f"IMG{i}.png", "width": 64, "height": 48} for i in (1, 2, 3, 4)],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 0, "bbox": [10, 10, 10, 10]},
            {"id": 2, "image_id": 2, "category_id": 0, "bbox": [0, 0, 10, 10]},
            {"id": 3, "image_id": 3, "category_id": 0, "bbox": [30, 30, 10, 10]},
            {"id": 4, "image_id": 4, "category_id": 0, "bbox": [5, 5, 10, 10]},
        ],
        "categories": [{"id": 0, "name": "fractured"}],
    }
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(coco))
    import_coco(path, images, "conflicts", unlisted_as_negatives=True)
    return {name: Image.objects.get(file_name=name) for name in ("IMG1.png", "IMG2.png", "IMG4.png")}


def reader(dataset):
    user = UserFactory()
    MembershipFactory(dataset=dataset, user=user, role=Role.RADIOLOGIST)
    client = APIClient()
    client.force_authenticate(user)
    return user, client


def test_the_conflicts_filter_lists_the_disagreeing_images_only(imported):
    dataset = imported["IMG1.png"].dataset
    user, client = reader(dataset)
    conflicts = [imported["IMG1.png"].pk, imported["IMG2.png"].pk]
    assert [i.pk for i in selectors.worklist(dataset, user, "conflicts")] == conflicts
    body = client.get(f"/api/review/datasets/{dataset.pk}/worklist/?filter=conflicts").json()
    assert [row["id"] for row in body["images"]] == conflicts
    assert {row["status"] for row in body["images"]} == {"conflict"}
    # still to read, never trained on
    assert imported["IMG1.png"].pk in [i.pk for i in selectors.worklist(dataset, user, "todo")]
    assert not dataset.images.labeled().filter(pk__in=conflicts).exists()


def test_the_review_page_gets_each_copys_boxes_and_the_reason(imported):
    image = imported["IMG1.png"]
    _, client = reader(image.dataset)
    body = client.post(f"/api/review/images/{image.pk}/open/").json()
    assert body["image"]["conflict"] == "IMG1.png has 1 box but Non_fractured/IMG9.png is negative"
    (box,) = body["boxes"]  # the union of the copies' boxes, shown to the reader
    assert body["copies"] == [
        {"file_name": "IMG1.png", "split": "", "verdict": "fractured",
         "boxes": [{"bbox": [10, 10, 10, 10], "category": 0, "annotation": box["id"], "iou": 1.0}]},
        {"file_name": "Non_fractured/IMG9.png", "split": "", "verdict": "negative", "boxes": []},
    ]
    assert body["image"]["status"] == "conflict"  # opening does not hide it from the filter
    ordinary = client.get(f"/api/review/images/{imported['IMG4.png'].pk}/").json()
    assert ordinary["copies"] == [] and ordinary["image"]["conflict"] == ""


def test_settling_a_conflict_as_negative_is_recorded(imported):
    image = imported["IMG1.png"]
    reason = image.conflict
    user, client = reader(image.dataset)
    body = client.post(f"/api/review/datasets/{image.dataset.pk}/next/", {"filter": "conflicts"}, format="json").json()
    assert body["image"]["id"] == image.pk
    (box,) = body["boxes"]
    assert client.delete(f"/api/review/annotations/{box['id']}/?version={box['version']}").status_code == 200
    response = client.post(f"/api/review/images/{image.pk}/finish/", {"outcome": "negative"}, format="json")
    assert response.status_code == 200, response.content

    image.refresh_from_db()
    assert (image.status, image.conflict) == (ReviewStatus.NEGATIVE, "")
    session = ReadingSession.objects.get(image=image, user=user)
    assert session.outcome == "negative" and session.finished_at is not None
    deletion = AnnotationRevision.objects.get(annotation_id=box["id"], version=2)
    assert deletion.actor == user and deletion.action == "deleted"
    event = AuditEvent.objects.get(action=AuditAction.ANNOTATION_CHANGED, object_type="annotator.image",
                                   object_id=str(image.pk))
    assert event.actor == user
    assert event.details == {"conflict_settled": reason, "outcome": "negative", "reading_session": session.pk}
    dataset = image.dataset
    assert [i.pk for i in selectors.worklist(dataset, user, "conflicts")] == [imported["IMG2.png"].pk]


def test_settling_a_box_conflict_as_labeled_keeps_the_chosen_box(imported):
    image = imported["IMG2.png"]
    user, client = reader(image.dataset)
    body = client.post(f"/api/review/images/{image.pk}/open/").json()
    first, second = body["boxes"]
    client.delete(f"/api/review/annotations/{second['id']}/?version={second['version']}")
    response = client.post(f"/api/review/images/{image.pk}/finish/", {"outcome": "labeled"}, format="json")
    assert response.status_code == 200, response.content
    image.refresh_from_db()
    assert (image.status, image.conflict) == (ReviewStatus.LABELED, "")
    assert list(image.annotations.filter(is_deleted=False).values_list("pk", flat=True)) == [first["id"]]
    deletion = AnnotationRevision.objects.get(annotation_id=second["id"], version=2)
    assert (deletion.actor, deletion.action) == (user, "deleted")
    event = AuditEvent.objects.get(action=AuditAction.ANNOTATION_CHANGED, object_type="annotator.image")
    assert event.details["outcome"] == "labeled" and event.details["conflict_settled"].startswith("box [0, 0, 10, 10]")


def test_skipping_a_conflict_leaves_it_to_settle(imported):
    image = imported["IMG1.png"]
    user, client = reader(image.dataset)
    client.post(f"/api/review/images/{image.pk}/open/")
    client.post(f"/api/review/images/{image.pk}/finish/", {"outcome": "skipped", "reason": "ask a second reader"},
                format="json")
    image.refresh_from_db()
    assert image.status == ReviewStatus.SKIPPED and image.conflict
    assert image.pk in [i.pk for i in selectors.worklist(image.dataset, user, "conflicts")]
    assert not AuditEvent.objects.filter(action=AuditAction.ANNOTATION_CHANGED, object_type="annotator.image").exists()


def test_a_conflict_in_the_validation_split_can_be_opened_and_settled(imported):
    """Ground truth of the frozen validation split that disagrees with itself is settled
    too (FracAtlas has 5 such groups); other validation images stay closed to readers."""
    image = imported["IMG1.png"]
    Image.objects.filter(pk__in=[image.pk, imported["IMG4.png"].pk]).update(split="val")
    user, client = reader(image.dataset)
    body = client.get(f"/api/review/datasets/{image.dataset.pk}/worklist/?filter=conflicts").json()
    assert image.pk in [row["id"] for row in body["images"]]
    assert client.post(f"/api/review/images/{image.pk}/open/").status_code == 200
    assert client.post(f"/api/review/images/{imported['IMG4.png'].pk}/open/").status_code == 404

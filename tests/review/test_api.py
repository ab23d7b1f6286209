"""The review API: optimistic locking, idempotent saves, access, bad input."""

import uuid

import pytest
from rest_framework.test import APIClient

from annotator.datasets.services.annotations import NewBox, create_boxes
from annotator.models import Annotation, AnnotationRevision, AnnotationSource, Role, SaveReceipt
from tests.factories import (
    CategoryFactory,
    DatasetFactory,
    ImageFactory,
    MembershipFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(media_root):
    dataset = DatasetFactory()
    category = CategoryFactory(dataset=dataset, coco_id=1, name="<b>transverse</b>")
    CategoryFactory(dataset=dataset, coco_id=2, name="oblique")
    image = ImageFactory(dataset=dataset)
    reader = UserFactory()
    MembershipFactory(dataset=dataset, user=reader, role=Role.RADIOLOGIST)
    (proposal,) = create_boxes([NewBox(image, category, 10, 10, 20, 15, AnnotationSource.MODEL, 0.9, "m1.p1")])
    client = APIClient()
    client.force_authenticate(reader)
    return {"dataset": dataset, "image": image, "reader": reader, "proposal": proposal, "client": client}


def test_stale_version_gets_409_with_current_state_and_changes_nothing(setup):
    client, box = setup["client"], setup["proposal"]
    first = client.patch(f"/api/review/annotations/{box.pk}/", {"version": 1, "x": 12}, format="json")
    assert first.status_code == 200 and first.json()["version"] == 2 and first.json()["source"] == "human"
    stale = client.patch(f"/api/review/annotations/{box.pk}/", {"version": 1, "x": 30}, format="json")
    assert stale.status_code == 409
    assert stale.json()["current"]["x"] == 12 and stale.json()["current"]["version"] == 2
    box.refresh_from_db()
    assert (box.x, box.version) == (12, 2)
    assert AnnotationRevision.objects.filter(annotation=box).count() == 2


def test_stale_delete_and_accept_get_409(setup):
    client, box = setup["client"], setup["proposal"]
    client.patch(f"/api/review/annotations/{box.pk}/", {"version": 1, "w": 25}, format="json")
    assert client.delete(f"/api/review/annotations/{box.pk}/?version=1").status_code == 409
    assert client.post(f"/api/review/annotations/{box.pk}/accept/", {"version": 1}, format="json").status_code == 409
    box.refresh_from_db()
    assert not box.is_deleted and box.version == 2


def test_update_writes_a_revision_with_before_and_after(setup):
    client, box = setup["client"], setup["proposal"]
    client.patch(f"/api/review/annotations/{box.pk}/", {"version": 1, "x": 11, "category": 2}, format="json")
    revision = AnnotationRevision.objects.get(annotation=box, version=2)
    assert revision.before["x"] == 10 and revision.after["x"] == 11
    assert (revision.before["category"], revision.after["category"]) == (1, 2)
    assert revision.actor == setup["reader"]
    assert revision.after["score"] == 0.9 and revision.after["serving_version"] == "m1.p1"


def test_accept_keeps_score_and_serving_version(setup):
    client, box = setup["client"], setup["proposal"]
    response = client.post(f"/api/review/annotations/{box.pk}/accept/", {"version": 1}, format="json")
    assert response.status_code == 200
    box.refresh_from_db()
    assert (box.source, box.score, box.serving_version, box.version) == ("human", 0.9, "m1.p1", 2)
    again = client.post(f"/api/review/annotations/{box.pk}/accept/", {"version": 2}, format="json")
    assert again.status_code == 400 and "not a model proposal" in again.json()["detail"]


def test_delete_is_soft_with_a_revision(setup):
    client, box = setup["client"], setup["proposal"]
    assert client.delete(f"/api/review/annotations/{box.pk}/?version=1").status_code == 200
    box.refresh_from_db()
    assert box.is_deleted and box.version == 2
    assert AnnotationRevision.objects.get(annotation=box, version=2).action == "deleted"


def test_idempotency_key_replay_returns_the_same_response_and_one_box(setup):
    client, image = setup["client"], setup["image"]
    key = str(uuid.uuid4())
    body = {"category": 1, "x": 1, "y": 2, "w": 5, "h": 6}
    first = client.post(f"/api/review/images/{image.pk}/annotations/", body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    second = client.post(f"/api/review/images/{image.pk}/annotations/", body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert Annotation.objects.filter(image=image, source="human").count() == 1
    assert SaveReceipt.objects.count() == 1


def test_idempotency_key_reused_for_another_request_is_refused(setup):
    client, image = setup["client"], setup["image"]
    key = str(uuid.uuid4())
    url = f"/api/review/images/{image.pk}/annotations/"
    client.post(url, {"category": 1, "x": 1, "y": 2, "w": 5, "h": 6}, format="json", HTTP_IDEMPOTENCY_KEY=key)
    other = client.post(url, {"category": 1, "x": 9, "y": 2, "w": 5, "h": 6}, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert other.status_code == 422
    assert Annotation.objects.filter(image=image, source="human").count() == 1


def test_replayed_update_is_not_applied_twice(setup):
    client, box = setup["client"], setup["proposal"]
    key = str(uuid.uuid4())
    for _ in range(2):
        response = client.patch(f"/api/review/annotations/{box.pk}/", {"version": 1, "x": 14}, format="json",
                                HTTP_IDEMPOTENCY_KEY=key)
        assert response.status_code == 200 and response.json()["version"] == 2
    box.refresh_from_db()
    assert box.version == 2


@pytest.mark.parametrize("body, message", [
    ({"category": 1, "x": 60, "y": 0, "w": 10, "h": 10}, "outside"),
    ({"category": 99, "x": 0, "y": 0, "w": 10, "h": 10}, "not one of this dataset's categories"),
    ({"category": 1, "x": "a", "y": 0, "w": 10, "h": 10}, "four numbers"),
    ({"category": 1, "x": 0, "y": 0, "w": 0, "h": 10}, "not positive"),
])
def test_bad_boxes_get_400_and_store_nothing(setup, body, message):
    response = setup["client"].post(f"/api/review/images/{setup['image'].pk}/annotations/", body, format="json")
    assert response.status_code == 400 and message in response.json()["detail"]
    assert not Annotation.objects.filter(image=setup["image"], source="human").exists()


def test_bad_idempotency_key_and_missing_version_get_400(setup):
    client, box = setup["client"], setup["proposal"]
    assert client.patch(f"/api/review/annotations/{box.pk}/", {"x": 3}, format="json").status_code == 400
    bad_key = client.patch(f"/api/review/annotations/{box.pk}/", {"version": 1, "x": 3}, format="json",
                           HTTP_IDEMPOTENCY_KEY="not-a-uuid")
    assert bad_key.status_code == 400
    box.refresh_from_db()
    assert box.version == 1


def test_other_datasets_images_and_boxes_answer_404_and_stay_unchanged(setup):
    outsider = UserFactory()
    MembershipFactory(user=outsider)  # a member of another dataset only
    client = APIClient()
    client.force_authenticate(outsider)
    image, box = setup["image"], setup["proposal"]
    assert client.get(f"/api/review/images/{image.pk}/pixels/").status_code == 404
    assert client.post(f"/api/review/images/{image.pk}/open/").status_code == 404
    assert client.patch(f"/api/review/annotations/{box.pk}/", {"version": 1, "x": 0}, format="json").status_code == 404
    assert client.delete(f"/api/review/annotations/{box.pk}/?version=1").status_code == 404
    assert client.post(f"/api/review/images/{image.pk}/annotations/",
                       {"category": 1, "x": 0, "y": 0, "w": 3, "h": 3}, format="json").status_code == 404
    assert client.post(f"/api/review/datasets/{setup['dataset'].pk}/next/").status_code == 404
    box.refresh_from_db()
    assert (box.x, box.version, box.is_deleted) == (10, 1, False)
    assert Annotation.objects.filter(image=image).count() == 1


def test_viewers_may_not_write(setup):
    viewer = UserFactory()
    MembershipFactory(dataset=setup["dataset"], user=viewer, role=Role.VIEWER)
    client = APIClient()
    client.force_authenticate(viewer)
    box = setup["proposal"]
    assert client.patch(f"/api/review/annotations/{box.pk}/", {"version": 1, "x": 0}, format="json").status_code == 403
    box.refresh_from_db()
    assert box.x == 10


def test_pixels_are_the_stored_values_little_endian(setup):
    import numpy as np

    from tests.factories import unique_pixels

    image = ImageFactory(dataset=setup["dataset"], pixels=unique_pixels(5))
    response = setup["client"].get(f"/api/review/images/{image.pk}/pixels/")
    assert response.status_code == 200
    assert (response["X-Width"], response["X-Height"], response["X-Bytes-Per-Pixel"]) == ("64", "48", "1")
    values = np.frombuffer(response.content, dtype=np.uint8).reshape(48, 64)
    assert np.array_equal(values, unique_pixels(5))


def test_sixteen_bit_pixels_keep_their_full_depth(setup):
    import numpy as np

    pixels = (np.arange(64 * 48, dtype=np.uint32).reshape(48, 64) * 13 % 4096).astype(np.uint16)
    image = ImageFactory(dataset=setup["dataset"], pixels=pixels, bit_depth=16)
    response = setup["client"].get(f"/api/review/images/{image.pk}/pixels/")
    assert response["X-Bytes-Per-Pixel"] == "2" and response["X-Bit-Depth"] == "16"
    assert np.array_equal(np.frombuffer(response.content, dtype="<u2").reshape(48, 64), pixels)


@pytest.mark.django_db(transaction=True)
def test_a_stale_write_queued_behind_a_reclass_reports_the_new_author_and_class(media_root):
    """Found by benchmarks/load.py: a stale PATCH waiting on the row lock of a proposal
    that another reader was editing answered 500 instead of 409. PostgreSQL re-reads the
    locked row after the wait but keeps the rows joined before it: the new author id came
    with no author, and with a new category the stale join dropped the row altogether."""
    import threading
    import time

    from django.db import connection, transaction

    from annotator.datasets.services.annotations import VersionConflict, update_box

    dataset = DatasetFactory()
    CategoryFactory(dataset=dataset, coco_id=1, name="transverse")
    oblique = CategoryFactory(dataset=dataset, coco_id=2, name="oblique")
    image = ImageFactory(dataset=dataset)
    first_reader, second_reader = UserFactory(), UserFactory()
    (proposal,) = create_boxes([NewBox(image, dataset.categories.get(coco_id=1), 10, 10, 20, 15,
                                       AnnotationSource.MODEL, 0.9, "m1.p1")])
    locked = threading.Event()

    def first_reader_reclasses():
        try:
            with transaction.atomic():
                Annotation.objects.select_for_update().get(pk=proposal.pk)
                locked.set()
                time.sleep(0.5)  # the second reader's write queues behind this lock
                Annotation.objects.filter(pk=proposal.pk).update(
                    author=first_reader, category=oblique, source="human", version=2)
        finally:
            connection.close()

    writer = threading.Thread(target=first_reader_reclasses)
    writer.start()
    locked.wait()
    with pytest.raises(VersionConflict) as conflict:
        update_box(proposal.pk, 1, {"x": 12}, second_reader)
    writer.join()
    current = conflict.value.current
    assert (current["author"], current["category"], current["version"]) == (first_reader.username, 2, 2)

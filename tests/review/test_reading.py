"""Reading sessions: status transitions, reading time, per-box outcomes and the stats."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from annotator.datasets.services.annotations import (
    NewBox,
    accept_proposal,
    add_box,
    create_boxes,
    delete_box,
    update_box,
)
from annotator.models import (
    AnnotationSource,
    BoxOutcome,
    ReadingSession,
    ReviewStatus,
    Role,
)
from annotator.review.services import reading as review
from annotator.review.services.stats import reader_stats
from tests.factories import (
    CategoryFactory,
    DatasetFactory,
    ImageFactory,
    MembershipFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def dataset(media_root):
    dataset = DatasetFactory()
    CategoryFactory(dataset=dataset, coco_id=1)
    CategoryFactory(dataset=dataset, coco_id=2)
    return dataset


def reader_of(dataset, name):
    user = UserFactory(username=name)
    MembershipFactory(dataset=dataset, user=user, role=Role.RADIOLOGIST)
    return user


def image_with_proposals(dataset, scores, version="m1.p1"):
    image = ImageFactory(dataset=dataset)
    category = dataset.categories.get(coco_id=1)
    proposals = create_boxes([
        NewBox(image, category, 5 + 5 * i, 5, 4, 4, AnnotationSource.MODEL, score, version)
        for i, score in enumerate(scores)
    ])
    return image, proposals


def backdate(session, seconds):
    ReadingSession.objects.filter(pk=session.pk).update(opened_at=timezone.now() - timedelta(seconds=seconds))
    session.refresh_from_db()


def test_reading_time_and_each_box_outcome_are_recorded(dataset):
    reader = reader_of(dataset, "ann")
    image, (kept, moved, resized, relabeled, deleted) = image_with_proposals(dataset, [0.9] * 5)
    session = review.open_image(image, reader)
    backdate(session, 30)
    accept_proposal(kept.pk, 1, reader)
    update_box(moved.pk, 1, {"x": 7}, reader)
    update_box(resized.pk, 1, {"w": 3}, reader)
    update_box(relabeled.pk, 1, {"category": 2}, reader)
    delete_box(deleted.pk, 1, reader)
    added = add_box(image, 1, 40, 30, 5, 5, reader)
    finished = review.finish_image(image, reader, "labeled")
    assert 29 < finished.seconds < 60
    kinds = dict(BoxOutcome.objects.filter(session=finished).values_list("annotation_id", "kind"))
    assert kinds == {kept.pk: "accepted", moved.pk: "moved", resized.pk: "resized",
                     relabeled.pk: "reclassified", deleted.pk: "deleted", added.pk: "added"}
    image.refresh_from_db()
    assert image.status == ReviewStatus.LABELED


def test_finish_refuses_pending_proposals_and_empty_labels(dataset):
    reader = reader_of(dataset, "bo")
    image, (proposal,) = image_with_proposals(dataset, [0.8])
    review.open_image(image, reader)
    with pytest.raises(review.FinishRefused, match="pending"):
        review.finish_image(image, reader, "labeled")
    with pytest.raises(review.FinishRefused, match="say why"):
        review.finish_image(image, reader, "skipped", "  ")
    image.refresh_from_db()
    assert image.status == ReviewStatus.IN_REVIEW


def test_no_fracture_deletes_the_shown_proposals(dataset):
    reader = reader_of(dataset, "cy")
    image, (proposal,) = image_with_proposals(dataset, [0.8])
    review.open_image(image, reader)
    review.finish_image(image, reader, "negative")
    proposal.refresh_from_db()
    image.refresh_from_db()
    assert proposal.is_deleted and image.status == ReviewStatus.NEGATIVE
    assert list(BoxOutcome.objects.values_list("kind", flat=True)) == ["deleted"]


def test_skip_keeps_the_reason_through_the_api(dataset):
    reader = reader_of(dataset, "di")
    image = ImageFactory(dataset=dataset)
    client = APIClient()
    client.force_authenticate(reader)
    client.post(f"/api/review/images/{image.pk}/open/")
    reason = "<script>alert(1)</script> motion blur"
    response = client.post(f"/api/review/images/{image.pk}/finish/", {"outcome": "skipped", "reason": reason},
                           format="json")
    assert response.status_code == 200 and response.json()["status"] == "skipped"
    image.refresh_from_db()
    assert image.skip_reason == reason
    bad = client.post(f"/api/review/images/{image.pk}/finish/", {"outcome": "maybe"}, format="json")
    assert bad.status_code == 400


def test_stats_on_a_hand_built_case(dataset):
    ann, bo = reader_of(dataset, "ann"), reader_of(dataset, "bo")
    # ann: image 1 (m1) in 10 s: 2 proposals accepted, 1 deleted; image 2 (m2) in 30 s: 1 accepted, 1 moved
    image1, (p1, p2, p3) = image_with_proposals(dataset, [0.9, 0.8, 0.7], "m1.p1")
    s = review.open_image(image1, ann)
    backdate(s, 10)
    accept_proposal(p1.pk, 1, ann)
    accept_proposal(p2.pk, 1, ann)
    delete_box(p3.pk, 1, ann)
    review.finish_image(image1, ann, "labeled")
    image2, (q1, q2) = image_with_proposals(dataset, [0.9, 0.9], "m2.p2")
    s = review.open_image(image2, ann)
    backdate(s, 30)
    accept_proposal(q1.pk, 1, ann)
    update_box(q2.pk, 1, {"y": 9}, ann)
    review.finish_image(image2, ann, "labeled")
    # bo: image 3, no proposals, no fracture, in 20 s
    image3 = ImageFactory(dataset=dataset)
    s = review.open_image(image3, bo)
    backdate(s, 20)
    review.finish_image(image3, bo, "negative")

    stats = reader_stats(dataset)
    by_reader = {row["name"]: row for row in stats["readers"]}
    assert by_reader["ann"]["images_read"] == 2
    assert by_reader["ann"]["median_seconds"] == pytest.approx(20, abs=1)
    assert by_reader["ann"]["proposals_reviewed"] == 5
    assert by_reader["ann"]["accepted_unchanged_share"] == pytest.approx(3 / 5)
    assert by_reader["bo"]["images_read"] == 1 and by_reader["bo"]["accepted_unchanged_share"] is None
    by_version = {row["name"]: row for row in stats["model_versions"]}
    assert by_version["m1.p1"]["accepted_unchanged_share"] == pytest.approx(2 / 3)
    assert by_version["m2.p2"]["accepted_unchanged_share"] == pytest.approx(1 / 2)
    assert by_version["m2.p2"]["outcomes"]["moved"] == 1
    assert stats["overall"]["images_read"] == 3

"""The worklist: ranking order, leases, filters, splits never offered."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from annotator.models import ImageLease, RankedImage, Ranking, ReviewStatus, Role, Split
from annotator.review import selectors
from annotator.review.services import reading as review
from tests.factories import DatasetFactory, ImageFactory, MembershipFactory, UserFactory


def reader_of(dataset):
    user = UserFactory()
    MembershipFactory(dataset=dataset, user=user, role=Role.RADIOLOGIST)
    return user


def client_for(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.mark.django_db
def test_next_follows_the_latest_ranking_then_id_order(media_root):
    dataset = DatasetFactory()
    a, b, c, d = (ImageFactory(dataset=dataset) for _ in range(4))
    old = Ranking.objects.create(dataset=dataset, strategy="random")
    RankedImage.objects.create(ranking=old, image=a, position=0, score=1)
    latest = Ranking.objects.create(dataset=dataset, strategy="ranked_batch")
    RankedImage.objects.create(ranking=latest, image=c, position=0, score=0.9)
    RankedImage.objects.create(ranking=latest, image=b, position=1, score=0.5)
    user = reader_of(dataset)
    assert [i.pk for i in selectors.worklist(dataset, user)] == [c.pk, b.pk, a.pk, d.pk]
    response = client_for(user).post(f"/api/review/datasets/{dataset.pk}/next/", {}, format="json")
    body = response.json()
    assert body["image"]["id"] == c.pk
    assert body["rank"] == {"strategy": "ranked_batch", "position": 0, "score": 0.9}


@pytest.mark.django_db
def test_validation_and_test_splits_are_never_offered(media_root):
    dataset = DatasetFactory()
    ImageFactory(dataset=dataset, split=Split.VAL)
    held_out = ImageFactory(dataset=dataset, split=Split.TEST)
    pool = ImageFactory(dataset=dataset, split=Split.POOL)
    user = reader_of(dataset)
    client = client_for(user)
    first = client.post(f"/api/review/datasets/{dataset.pk}/next/", {}, format="json").json()
    assert first["image"]["id"] == pool.pk
    client.post(f"/api/review/images/{pool.pk}/finish/", {"outcome": "skipped", "reason": "blurred"}, format="json")
    assert client.post(f"/api/review/datasets/{dataset.pk}/next/", {}, format="json").json()["image"] is None
    assert client.post(f"/api/review/images/{held_out.pk}/open/").status_code == 404


@pytest.mark.django_db
def test_two_readers_calling_next_get_different_images(media_root):
    dataset = DatasetFactory()
    images = [ImageFactory(dataset=dataset) for _ in range(2)]
    first, second = reader_of(dataset), reader_of(dataset)
    got_first = client_for(first).post(f"/api/review/datasets/{dataset.pk}/next/", {}, format="json").json()
    got_second = client_for(second).post(f"/api/review/datasets/{dataset.pk}/next/", {}, format="json").json()
    assert {got_first["image"]["id"], got_second["image"]["id"]} == {i.pk for i in images}
    third = reader_of(dataset)
    assert client_for(third).post(f"/api/review/datasets/{dataset.pk}/next/", {}, format="json").json()["image"] is None
    assert client_for(third).post(f"/api/review/images/{images[0].pk}/open/").status_code == 409


@pytest.mark.django_db(transaction=True)
def test_concurrent_next_calls_never_share_an_image(media_root):
    dataset = DatasetFactory()
    images = [ImageFactory(dataset=dataset) for _ in range(6)]
    readers = [reader_of(dataset) for _ in range(6)]
    claimed, barrier = {}, threading.Barrier(len(readers))

    def claim(user):
        barrier.wait()
        try:
            image = review.claim_next(dataset, user)
            claimed[user.pk] = image.pk if image else None
        finally:
            connection.close()

    threads = [threading.Thread(target=claim, args=(u,)) for u in readers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed.values()) == sorted(i.pk for i in images)
    assert ImageLease.objects.filter(image__dataset=dataset).count() == 6


@pytest.mark.django_db
def test_an_expired_lease_is_taken_over(media_root):
    dataset = DatasetFactory()
    image = ImageFactory(dataset=dataset)
    first, second = reader_of(dataset), reader_of(dataset)
    assert review.claim_next(dataset, first) == image
    assert review.claim_next(dataset, second) is None
    ImageLease.objects.filter(image=image).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert review.claim_next(dataset, second) == image
    assert ImageLease.objects.get(image=image).user == second


@pytest.mark.django_db
def test_filters_and_next_after_the_current_image(media_root):
    dataset = DatasetFactory()
    a, b, c = (ImageFactory(dataset=dataset) for _ in range(3))
    c.status = ReviewStatus.SKIPPED
    c.save()
    b.status = ReviewStatus.PROPOSED
    b.save()
    user = reader_of(dataset)
    assert [i.pk for i in selectors.worklist(dataset, user, "unlabeled")] == [a.pk]
    assert [i.pk for i in selectors.worklist(dataset, user, "proposed")] == [b.pk]
    assert [i.pk for i in selectors.worklist(dataset, user, "skipped")] == [c.pk]
    assert list(selectors.worklist(dataset, user, "mine")) == []
    review.open_image(a, user)
    assert [i.pk for i in selectors.worklist(dataset, user, "mine")] == [a.pk]
    assert review.claim_next(dataset, user, "todo", after=a) == b
    assert review.previous_image(dataset, user, b) == a
    response = client_for(user).get(f"/api/review/datasets/{dataset.pk}/worklist/?filter=nonsense")
    assert response.status_code == 400


@pytest.mark.django_db
def test_opening_marks_in_review_and_one_lease_per_reader(media_root):
    dataset = DatasetFactory()
    a, b = ImageFactory(dataset=dataset), ImageFactory(dataset=dataset)
    user = reader_of(dataset)
    review.open_image(a, user)
    a.refresh_from_db()
    assert a.status == ReviewStatus.IN_REVIEW
    review.open_image(b, user)
    assert list(ImageLease.objects.filter(user=user).values_list("image_id", flat=True)) == [b.pk]


def _proposed_images(dataset, count, boxes_each):
    from annotator.datasets.services.annotations import NewBox, create_boxes
    from annotator.models import AnnotationSource
    from tests.factories import CategoryFactory

    category = CategoryFactory(dataset=dataset)
    images = [ImageFactory(dataset=dataset) for _ in range(count)]
    create_boxes([NewBox(i, category, 1, 1, 5, 5, AnnotationSource.MODEL, 0.9, "m.p1")
                  for i in images for _ in range(boxes_each)])
    return images


def _queries_of_next(client, dataset, after=None):
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        body = client.post(f"/api/review/datasets/{dataset.pk}/next/", {"after": after}, format="json").json()
    return len(queries), body


@pytest.mark.django_db
def test_next_costs_a_fixed_small_number_of_queries_whatever_the_boxes(media_root):
    counts = []
    for boxes_each in (1, 12):
        dataset = DatasetFactory()
        images = _proposed_images(dataset, 3, boxes_each)
        Ranking.objects.create(dataset=dataset, strategy="ranked_batch")
        client = client_for(reader_of(dataset))
        _, first = _queries_of_next(client, dataset)
        count, second = _queries_of_next(client, dataset, after=first["image"]["id"])
        assert len(second["boxes"]) == boxes_each
        assert second["upcoming"]["id"] == images[2].pk
        counts.append(count)
    assert counts[0] == counts[1] <= 21, counts


@pytest.mark.django_db
def test_preview_shows_what_next_will_hand_out_without_leasing_it(media_root):
    dataset = DatasetFactory()
    current, upcoming = _proposed_images(dataset, 2, 2)
    client = client_for(reader_of(dataset))
    body = client.post(f"/api/review/datasets/{dataset.pk}/next/", {}, format="json").json()
    assert body["image"]["id"] == current.pk
    assert body["upcoming"] == {"id": upcoming.pk, "url": f"/api/review/images/{upcoming.pk}/",
                                "pixels_url": f"/api/review/images/{upcoming.pk}/pixels/"}
    preview = client.get(body["upcoming"]["url"]).json()
    assert not ImageLease.objects.filter(image=upcoming).exists()
    assert not upcoming.reading_sessions.exists()
    assert "session" not in preview and preview["image"]["status"] == ReviewStatus.UNLABELED
    handed_out = client.post(f"/api/review/datasets/{dataset.pk}/next/", {"after": current.pk}, format="json").json()
    assert handed_out["image"]["id"] == upcoming.pk
    assert (handed_out["boxes"], handed_out["categories"]) == (preview["boxes"], preview["categories"])


@pytest.mark.django_db
def test_preview_refuses_held_out_images_and_other_datasets(media_root):
    dataset = DatasetFactory()
    held_out = ImageFactory(dataset=dataset, split=Split.TEST)
    elsewhere = ImageFactory()
    client = client_for(reader_of(dataset))
    assert client.get(f"/api/review/images/{held_out.pk}/").status_code == 404
    assert client.get(f"/api/review/images/{elsewhere.pk}/").status_code == 404

"""Every image of a long worklist can be reached (pages), new uploads included; scores
say "not ranked yet" until a model has ranked the pool."""

import pytest

from annotator.models import RankedImage, Ranking, Role
from tests.factories import DatasetFactory, ImageFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def long_list(media_root, client):
    dataset = DatasetFactory()
    reader = UserFactory()
    MembershipFactory(dataset=dataset, user=reader, role=Role.RADIOLOGIST)
    images = [ImageFactory(dataset=dataset) for _ in range(130)]
    ranking = Ranking.objects.create(dataset=dataset, strategy="cold_start", image_count=120)
    RankedImage.objects.bulk_create(
        RankedImage(ranking=ranking, image=image, position=n, score=0.0) for n, image in enumerate(images[:120])
    )
    client.force_login(reader)
    return dataset, images, client


def test_the_api_pages_past_100_rows_and_the_new_uploads_come_last(long_list):
    dataset, images, client = long_list
    first = client.get(f"/api/review/datasets/{dataset.pk}/worklist/").json()
    second = client.get(f"/api/review/datasets/{dataset.pk}/worklist/?page=2").json()
    assert (first["count"], first["pages"], len(first["images"]), len(second["images"])) == (130, 2, 100, 30)
    assert [row["id"] for row in second["images"]][-10:] == [i.pk for i in images[120:]]
    assert first["ranking"]["by_model"] is False and first["images"][0]["rank_score"] is None


def test_not_ranked_lists_the_uploads_the_latest_ranking_misses(long_list):
    dataset, images, client = long_list
    body = client.get(f"/api/review/datasets/{dataset.pk}/worklist/?filter=not_ranked").json()
    assert [row["id"] for row in body["images"]] == [i.pk for i in images[120:]]


def test_the_page_shows_not_ranked_yet_and_a_page_link(long_list):
    dataset, _, client = long_list
    html = client.get(f"/review/datasets/{dataset.pk}/").content.decode()
    assert "not ranked yet" in html and "page 1 of 2 (130 images)" in html and "page=2" in html
    assert "0.000" not in html


def test_new_lists_what_no_reader_has_opened(long_list):
    from annotator.review.services.reading import open_image

    dataset, images, client = long_list
    open_image(images[0], UserFactory())
    body = client.get(f"/api/review/datasets/{dataset.pk}/worklist/?filter=new").json()
    assert body["count"] == 129 and images[0].pk not in [row["id"] for row in body["images"]]

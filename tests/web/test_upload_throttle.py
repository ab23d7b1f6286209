"""Uploads are throttled per user (issue 16, item 14)."""

from __future__ import annotations

import io

import pytest
from django.core.cache import cache
from PIL import Image as PILImage

from annotator.models import Role
from annotator.web.throttles import UploadThrottle
from tests.factories import MembershipFactory, UserFactory
from tests.security_world import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def two_per_minute(settings, monkeypatch):
    cache.clear()
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "upload": "2/minute"}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    monkeypatch.setattr(UploadThrottle, "THROTTLE_RATES", rates)  # undone after the test
    yield
    cache.clear()


def test_the_throttle_counts_writes_per_user(rf):
    one, two = UserFactory(), UserFactory()

    def post(user):
        request = rf.post("/")
        request.user = user
        return UploadThrottle().allow_request(request, None)

    assert [post(one), post(one), post(one)] == [True, True, False]
    assert post(two)
    reading = rf.get("/")
    reading.user = one
    assert UploadThrottle().allow_request(reading, None)


def png() -> io.BytesIO:
    buffer = io.BytesIO()
    PILImage.new("L", (16, 16)).save(buffer, format="PNG")
    buffer.seek(0)
    buffer.name = "x.png"
    return buffer


def test_the_upload_api_answers_429_over_the_rate(media_root):
    member = MembershipFactory(role=Role.ADMIN)
    client = client_for(member.user)
    url = f"/api/datasets/{member.dataset.pk}/images/"
    statuses = [client.post(url, {"file": png()}, format="multipart").status_code for _ in range(3)]
    assert statuses[:2] != [429, 429] and statuses[2] == 429
    assert client.get(url).status_code == 200

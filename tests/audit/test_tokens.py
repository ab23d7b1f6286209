"""API tokens (issue 16, item 12): stored hashed, expiring, revoked on a password change
and on sign-out, and listed and revoked by their owner."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_hasher_and_fresh_rates(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    cache.clear()  # the sign-in rate counts these tests' tokens
    yield
    cache.clear()


def issue(user) -> dict:
    response = APIClient().post("/api/auth/token/", {"username": user.username, "password": "pw-for-tests"},
                                format="json")
    assert response.status_code == 200, response.content
    return response.json()


def with_token(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def test_tokens_are_stored_hashed_and_expire():
    user = UserFactory()
    issued = issue(user)
    (stored,) = AuthToken.objects.filter(user=user)
    assert issued["token"] not in (stored.digest, stored.token_key) and len(stored.digest) == 128
    assert timedelta(days=29) < stored.expiry - timezone.now() <= timedelta(days=30)
    client = with_token(issued["token"])
    assert client.get("/api/datasets/").status_code == 200
    AuthToken.objects.filter(pk=stored.pk).update(expiry=timezone.now() - timedelta(seconds=1))
    assert client.get("/api/datasets/").status_code in (401, 403)


def test_a_password_change_revokes_every_token():
    user = UserFactory()
    first, second = issue(user)["token"], issue(user)["token"]
    user.set_password("a-new-password-for-tests")
    user.save()
    assert with_token(first).get("/api/datasets/").status_code in (401, 403)
    assert with_token(second).get("/api/datasets/").status_code in (401, 403)
    user.first_name = "renamed"  # other changes keep them
    user.save()
    assert AuthToken.objects.filter(user=user).count() == 0


def test_signing_out_revokes_every_token(client):
    user = UserFactory()
    token = issue(user)["token"]
    client.force_login(user)
    client.post("/accounts/logout/")
    assert with_token(token).get("/api/datasets/").status_code in (401, 403)


def test_owners_list_and_revoke_their_tokens():
    user, other = UserFactory(), UserFactory()
    keep, drop = issue(user), issue(user)
    foreign = issue(other)
    client = with_token(keep["token"])
    listed = client.get("/api/auth/tokens/").json()
    assert sorted(t["token_key"] for t in listed) == sorted([keep["token_key"], drop["token_key"]])
    assert all(set(t) == {"token_key", "created", "expiry"} for t in listed)
    assert client.delete(f"/api/auth/tokens/{foreign['token_key']}/").status_code == 404
    assert client.delete(f"/api/auth/tokens/{drop['token_key']}/").status_code == 204
    assert with_token(drop["token"]).get("/api/datasets/").status_code in (401, 403)
    assert client.get("/api/datasets/").status_code == 200
    assert with_token(foreign["token"]).get("/api/datasets/").status_code == 200

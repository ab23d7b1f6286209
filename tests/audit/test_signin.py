"""The sign-in throttle (issue 16, items 1, 8 and 9): the per-address limit is never
reset by a success, the address comes from X-Forwarded-For only through a trusted
proxy, and a NUL byte in a name or path is a refusal, never a 500."""

from __future__ import annotations

import pytest
from django.test import RequestFactory
from rest_framework.test import APIClient

from annotator.audit.models import AuditAction, AuditEvent
from annotator.audit.services import client_ip
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def sign_in(client, username, password="wrong", **extra):
    client.post("/accounts/login/", {"username": username, "password": password}, **extra)
    return "_auth_user_id" in client.session


@pytest.fixture
def limits(settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    settings.LOGIN_FAILURE_LIMIT_PER_IP = 6
    return settings


def test_a_success_does_not_reset_the_address_limit(client, limits):
    """Item 1: failures on distinct names, a good sign-in of one's own account between
    them: the address is still locked once it reaches its limit."""
    own = UserFactory()
    for round_ in range(3):
        for n in range(2):
            assert not sign_in(client, f"guess-{round_}-{n}")
        if round_ < 2:
            assert sign_in(client, own.username, "pw-for-tests")
            client.logout()
    assert AuditEvent.objects.filter(action=AuditAction.LOGIN_FAILED, ip="127.0.0.1").count() == 6
    # the address is locked: even the right password for a fresh name is refused
    assert not sign_in(client, own.username, "pw-for-tests")
    assert not sign_in(client, UserFactory().username, "pw-for-tests")


def test_a_success_resets_the_limit_of_its_own_name(client, limits):
    user = UserFactory()
    for _ in range(2):
        assert not sign_in(client, user.username, REMOTE_ADDR="10.0.0.1")
        assert not sign_in(client, user.username, REMOTE_ADDR="10.0.0.1")
        assert sign_in(client, user.username, "pw-for-tests", REMOTE_ADDR="10.0.0.2")
        client.logout()


# --- item 8: X-Forwarded-For only from trusted proxies -----------------------------------

def address(remote, forwarded=None):
    extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
    return client_ip(RequestFactory().get("/", REMOTE_ADDR=remote, **extra))


def test_forwarded_address_is_ignored_without_trusted_proxies(settings):
    settings.TRUSTED_PROXIES = []
    assert address("10.0.0.5", "203.0.113.7") == "10.0.0.5"


def test_forwarded_address_is_used_from_a_trusted_proxy_only(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/24", "2001:db8::1"]
    assert address("10.0.0.5", "203.0.113.7") == "203.0.113.7"
    assert address("2001:db8::1", "203.0.113.8") == "203.0.113.8"
    # the client's own entries (left) cannot choose its address; chained proxies are skipped
    assert address("10.0.0.5", "198.51.100.1, 203.0.113.7, 10.0.0.9") == "203.0.113.7"
    # a peer outside the list cannot claim any address
    assert address("192.0.2.44", "203.0.113.7") == "192.0.2.44"
    # a trusted proxy without the header, or with rubbish in it
    assert address("10.0.0.5") == "10.0.0.5"
    assert address("10.0.0.5", "not-an-address") is None


def test_behind_a_trusted_proxy_one_client_locked_out_does_not_lock_another(client, limits):
    limits.TRUSTED_PROXIES = ["127.0.0.1"]
    user = UserFactory()
    for n in range(6):
        assert not sign_in(client, f"guess-{n}", HTTP_X_FORWARDED_FOR="203.0.113.7")
    assert not sign_in(client, user.username, "pw-for-tests", HTTP_X_FORWARDED_FOR="203.0.113.7")
    assert sign_in(client, user.username, "pw-for-tests", HTTP_X_FORWARDED_FOR="203.0.113.8")


# --- item 9: NUL bytes -----------------------------------------------------------------

NUL_NAME = "adm\x00in"


def test_a_nul_byte_in_a_user_name_is_refused_on_every_sign_in_path(client):
    UserFactory(username="admin")
    assert client.post("/accounts/login/", {"username": NUL_NAME, "password": "x"}).status_code in (200, 400)
    assert client.post("/admin/login/", {"username": NUL_NAME, "password": "x"}).status_code in (200, 400)
    assert client.post("/api/auth/login/", {"username": NUL_NAME, "password": "x"}).status_code in (200, 400)
    api = APIClient()
    assert api.post("/api/auth/token/", {"username": NUL_NAME, "password": "x"}, format="json").status_code == 400
    api.credentials(HTTP_AUTHORIZATION="Token abc\x00def")
    assert api.get("/api/datasets/").status_code in (400, 401, 403)
    assert "_auth_user_id" not in client.session


def test_a_nul_byte_reaching_the_backend_is_a_failed_sign_in_logged_without_it(rf):
    from django.contrib.auth import authenticate

    UserFactory(username="admin")
    assert authenticate(rf.post("/"), username=NUL_NAME, password="pw-for-tests") is None
    assert AuditEvent.objects.filter(action=AuditAction.LOGIN_FAILED, actor_username="admin").count() == 1


@pytest.mark.parametrize("path", ["/accounts/login/%00", "/api/auth/token/%00", "/admin/login/%00",
                                  "/api/datasets/%00/", "/api/images/1%00/file/", "/healthz%00"])
def test_a_nul_byte_in_a_path_is_not_a_server_error(client, path):
    # anonymous: a refusal (403 under session auth), a redirect to sign in, or not found
    assert client.get(path).status_code in (302, 400, 403, 404)
    client.force_login(UserFactory())
    assert client.get(path).status_code in (302, 400, 404)

"""Deployment settings, the sign-in throttle, and weights files that carry code."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from annotator.models import AuditAction, AuditEvent
from tests.factories import UserFactory

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_ENV = {
    "SECRET_KEY": "k7#Qm2!vX9zR4pL8wN1tY6uB3eH5jC0aF-gD_sK+iO=rT2yU4xW",
    "ALLOWED_HOSTS": "fracture.example.org",
    "DEBUG": "0",
    "SECURE_COOKIES": "1",
    "SECURE_SSL_REDIRECT": "1",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_PRELOAD": "1",
    "SECURE_PROXY_SSL_HEADER": "1",
}


def manage(*args, **env):
    # the browser tests' DJANGO_ALLOW_ASYNC_UNSAFE (Playwright beside live_server) is no
    # production setting either
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("SECURE_", "DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE"))}
    full_env.update(env)
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=120)


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    result = manage("check", "--deploy", "--fail-level", "WARNING", VAR_DIR=str(tmp_path), **PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_fails_without_the_hardening(tmp_path):
    env = {**PRODUCTION_ENV, "SECURE_SSL_REDIRECT": "0", "SECURE_HSTS_SECONDS": "0", "SECURE_COOKIES": "0"}
    result = manage("check", "--deploy", "--fail-level", "WARNING", VAR_DIR=str(tmp_path), **env)
    assert result.returncode != 0
    assert "security.W008" in result.stderr + result.stdout


def test_a_wildcard_host_is_refused_outside_debug(tmp_path):
    result = manage("check", VAR_DIR=str(tmp_path), **{**PRODUCTION_ENV, "ALLOWED_HOSTS": "*"})
    assert result.returncode != 0
    assert "ALLOWED_HOSTS='*' is refused" in result.stderr


@pytest.mark.django_db
def test_html_sign_in_locks_after_too_many_failures(client):
    user = UserFactory()
    for _ in range(settings.LOGIN_FAILURE_LIMIT):
        response = client.post("/accounts/login/", {"username": user.username, "password": "wrong"})
        assert response.status_code == 200 and "_auth_user_id" not in client.session
    blocked = client.post("/accounts/login/", {"username": user.username, "password": "pw-for-tests"})
    assert "_auth_user_id" not in client.session
    assert "Too many failed sign-ins" in blocked.content.decode()
    assert AuditEvent.objects.filter(action=AuditAction.LOGIN_FAILED).count() >= settings.LOGIN_FAILURE_LIMIT


@pytest.mark.django_db
def test_html_sign_in_works_below_the_limit(client):
    user = UserFactory()
    for _ in range(settings.LOGIN_FAILURE_LIMIT - 1):
        client.post("/accounts/login/", {"username": user.username, "password": "wrong"})
    response = client.post("/accounts/login/", {"username": user.username, "password": "pw-for-tests"})
    assert response.status_code == 302 and client.session["_auth_user_id"] == str(user.pk)


@pytest.mark.django_db
def test_token_endpoint_gives_a_token_and_locks_after_failures():
    user = UserFactory()
    api = APIClient()
    good = api.post("/api/auth/token/", {"username": user.username, "password": "pw-for-tests"}, format="json")
    assert good.status_code == 200 and len(good.json()["token"]) == 64
    for _ in range(settings.LOGIN_FAILURE_LIMIT):
        bad = api.post("/api/auth/token/", {"username": user.username, "password": "nope"}, format="json")
        assert bad.status_code == 400
    blocked = api.post("/api/auth/token/", {"username": user.username, "password": "pw-for-tests"}, format="json")
    assert blocked.status_code == 429
    token_client = APIClient()
    token_client.credentials(HTTP_AUTHORIZATION=f"Token {good.json()['token']}")
    assert token_client.get("/api/datasets/").status_code == 200


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.django_db
def test_weights_pickled_with_a_payload_are_refused_and_never_run(tmp_path, media_root):
    """Registering weights is a service and a command (issue 4), not an API endpoint:
    the service is tested with a pickle whose unpickling would create a marker file."""
    from annotator.learning.services.registration import WeightsRefused, register_weights
    from tests.factories import CategoryFactory

    marker = tmp_path / "pwned"
    weights = tmp_path / "weights.pt"
    weights.write_bytes(pickle.dumps({"model": _Payload(marker)}))
    category = CategoryFactory()
    with pytest.raises(WeightsRefused, match="weights_only|refused|not loadable"):
        register_weights(category.dataset, weights, evaluate=False)
    assert not marker.exists()

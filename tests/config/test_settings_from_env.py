"""Settings come from the environment, through helpers that fail loudly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_int, env_list, env_str

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import json, django; from django.conf import settings; django.setup(); "
    "print(json.dumps({'db': settings.DATABASES['default']['ENGINE'], "
    "'name': str(settings.DATABASES['default']['NAME']), 'broker': settings.CELERY_BROKER_URL, "
    "'media': str(settings.MEDIA_ROOT), 'hosts': settings.ALLOWED_HOSTS}))"
)
KEY = "k7#Qm2!vX9zR4pL8wN1tY6uB3eH5jC0aF-gD_sK+iO=rT2yU4xW"  # 50 characters
CLEARED = ("DATABASE_URL", "CELERY_BROKER_URL", "SECRET_KEY", "SECRET_KEY_FILE", "DEBUG",
           "ALLOWED_HOSTS", "MEDIA_ROOT", "VAR_DIR", "PLATFORM_TEST_REQUIRE_SERVICES")


def load_settings(tmp_path, **env) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in CLEARED}
    environment.update({"DJANGO_SETTINGS_MODULE": "config.settings", "VAR_DIR": str(tmp_path / "var"), **env})
    return subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=60)


def test_defaults_are_sqlite_and_an_embedded_broker_under_var(tmp_path):
    result = load_settings(tmp_path, SECRET_KEY=KEY)
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["db"] == "django.db.backends.sqlite3"
    assert values["name"] == str(tmp_path / "var" / "db.sqlite3")
    assert values["broker"] == "filesystem://"
    assert (tmp_path / "var" / "broker" / "queue").is_dir()
    assert values["media"] == str(tmp_path / "var" / "media")


def test_urls_select_postgresql_and_redis(tmp_path):
    result = load_settings(tmp_path, SECRET_KEY=KEY, DATABASE_URL="postgresql://u@db.example:5432/fx",
                           CELERY_BROKER_URL="redis://cache:6379/2", MEDIA_ROOT=str(tmp_path / "m"),
                           ALLOWED_HOSTS="xray.example.org, 10.0.0.5")
    values = json.loads(result.stdout)
    assert values["db"] == "django.db.backends.postgresql" and values["name"] == "fx"
    assert values["broker"] == "redis://cache:6379/2"
    assert values["media"] == str(tmp_path / "m")
    assert values["hosts"] == ["xray.example.org", "10.0.0.5"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "SECRET_KEY (or SECRET_KEY_FILE) must be set unless DEBUG=1"),
        ({"SECRET_KEY": KEY, "DEBUG": "maybe"}, "DEBUG='maybe' is not a boolean"),
        ({"SECRET_KEY": KEY, "ALLOWED_HOSTS": "*"}, "ALLOWED_HOSTS='*' is refused outside DEBUG"),
        ({"SECRET_KEY": KEY, "MAX_UPLOAD_BYTES": "lots"}, "MAX_UPLOAD_BYTES='lots' is not an integer"),
        ({"SECRET_KEY_FILE": "/nonexistent/secret"}, "SECRET_KEY_FILE='/nonexistent/secret' cannot be read"),
        # issue 16, item 7: published examples and short keys are refused outside DEBUG
        ({"SECRET_KEY": "change-me"}, "SECRET_KEY is an example value from the documentation"),
        ({"SECRET_KEY": "change-me-to-a-long-random-string"}, "SECRET_KEY is an example value"),
        ({"SECRET_KEY": KEY[:49]}, "SECRET_KEY has 49 characters; use at least 50"),
        ({"SECRET_KEY": KEY, "SECRET_KEY_FALLBACKS": "old-key"}, "SECRET_KEY_FALLBACKS has 7 characters"),
        ({"SECRET_KEY": KEY, "LABEL_STUDIO_SIGNING_KEY": "change-me"}, "LABEL_STUDIO_SIGNING_KEY is an example"),
        ({"SECRET_KEY": KEY, "TRUSTED_PROXIES": "10.0.0.0/8, proxy.internal"},
         "TRUSTED_PROXIES: 'proxy.internal' is not an IP address or network"),
    ],
)
def test_bad_configuration_fails_loudly(tmp_path, env, message):
    result = load_settings(tmp_path, **env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and message in result.stderr


def test_secret_key_from_file_and_debug_default(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text(KEY + "\n")
    assert load_settings(tmp_path, SECRET_KEY_FILE=str(secret)).returncode == 0
    assert load_settings(tmp_path, DEBUG="1").returncode == 0  # DEBUG may use a dev key
    assert load_settings(tmp_path, DEBUG="1", SECRET_KEY="change-me").returncode == 0


def test_typed_helpers(monkeypatch):
    monkeypatch.setenv("FLAG", "Yes")
    monkeypatch.setenv("COUNT", "12")
    monkeypatch.setenv("NAMES", "a, b,,c")
    assert env_bool("FLAG") is True and env_bool("UNSET_FLAG", True) is True
    assert env_int("COUNT", 0) == 12 and env_list("NAMES", []) == ["a", "b", "c"]
    assert env_str("UNSET_NAME", "d") == "d"
    monkeypatch.setenv("COUNT", "-1")
    with pytest.raises(ImproperlyConfigured, match="COUNT=-1 is below the minimum of 0"):
        env_int("COUNT", 0, minimum=0)

"""Typed readers for settings from the environment.

Each helper fails loudly (``ImproperlyConfigured`` naming the variable and the bad value)
instead of guessing. ``NAME_FILE`` is honoured for secrets: when ``SECRET_KEY_FILE`` is
set, the value is read from that file (Docker/Kubernetes secrets).
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None) -> str | None:
    """The variable's value, or the contents of the file named by ``NAME_FILE``."""
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        try:
            return Path(file_path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_path!r} cannot be read: {exc}") from exc
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no)")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below the minimum of {minimum}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    """A comma-separated list; empty items are dropped."""
    raw = os.environ.get(name)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


# Values shown in the README, env.example and older docs: public, so never a secret.
EXAMPLE_SECRETS = frozenset({
    "change-me",
    "change-me-to-a-long-random-string",
    "insecure-development-key-only-used-with-DEBUG",
})
MIN_SECRET_LENGTH = 50


def check_secret(name: str, value: str) -> None:
    """Refuse a published example value, or one too short to resist guessing (Django's
    own deploy check asks for 50 characters)."""
    if value in EXAMPLE_SECRETS:
        raise ImproperlyConfigured(f"{name} is an example value from the documentation; set a random one "
                                   "(python -c 'import secrets; print(secrets.token_urlsafe(50))')")
    if len(value) < MIN_SECRET_LENGTH:
        raise ImproperlyConfigured(f"{name} has {len(value)} characters; use at least {MIN_SECRET_LENGTH} "
                                   "random ones (python -c 'import secrets; print(secrets.token_urlsafe(50))')")


def env_networks(name: str) -> list[str]:
    """A comma-separated list of IP addresses or networks (``10.0.0.0/8``), checked."""
    networks = []
    for item in env_list(name, []):
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ImproperlyConfigured(f"{name}: {item!r} is not an IP address or network") from None
    return networks


def env_path(name: str, default: Path) -> Path:
    raw = os.environ.get(name)
    return Path(raw).expanduser().resolve() if raw else default
